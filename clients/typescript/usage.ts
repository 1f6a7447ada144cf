// What an app written against the generated SDK does, as tests/api_contract/test_generated_client.py does it in
// Python: sign in, file an expense, submit it, the manager approves it, request a report and download it.
// `tsc --noEmit` checks it against the SDK generated from the app's document; nothing runs it.
import { createClient } from './generated/client';
import {
  authLogin,
  expensesApprove,
  expensesCreate,
  expensesGet,
  expensesSubmit,
  reportsDownload,
  reportsGenerate,
  reportsGet,
} from './generated/sdk.gen';
import type { EntryOut, EntryStatus, TokenPair } from './generated/types.gen';

type Client = ReturnType<typeof createClient>;

export async function signIn(baseUrl: string, username: string, password: string): Promise<Client> {
  const { data, error } = await authLogin({ client: createClient({ baseUrl }), body: { username, password } });
  if (error !== undefined || data === undefined || !('access_token' in data)) {
    throw new Error('no token: a wrong password, or a two-factor challenge to finish with authLoginOtp');
  }
  const tokens: TokenPair = data;
  return createClient({ baseUrl, auth: tokens.access_token });
}

export async function fileAndApprove(employee: Client, manager: Client): Promise<EntryOut> {
  const filed = await expensesCreate({
    client: employee,
    throwOnError: true,
    body: { amount: '120.00', currency: 'USD', category: 'travel', entry_date: '2026-01-15', vendor: 'Rail Co' },
  });
  const path = { entry_id: filed.data.id };
  const submitted = await expensesSubmit({ client: employee, path, throwOnError: true });
  const pending: EntryStatus = submitted.data.status;
  const approved = await expensesApprove({ client: manager, path, body: { comment: `was ${pending}` } });
  if (approved.error !== undefined) {
    throw new Error(`not approved: ${JSON.stringify(approved.error)}`);
  }
  const seen = await expensesGet({ client: employee, path, throwOnError: true });
  // Money is a string in JSON, never a float.
  const amount: string = seen.data.amount;
  return { ...seen.data, amount };
}

export async function monthlyReport(accountant: Client): Promise<Blob> {
  const accepted = await reportsGenerate({
    client: accountant,
    throwOnError: true,
    body: { type: 'pnl', format: 'csv', period: { from: '2026-01-01', to: '2026-01-31' } },
  });
  const path = { report_id: accepted.data.id };
  for (;;) {
    const report = await reportsGet({ client: accountant, path, throwOnError: true });
    if (report.data.status === 'completed') break;
    if (report.data.error !== null) throw new Error(report.data.error);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const file = await reportsDownload({ client: accountant, path, parseAs: 'blob', throwOnError: true });
  return file.data;
}

// @hey-api/openapi-ts: a fetch-based TypeScript SDK (one function per operation, named by its operation id:
// expenses-create -> expensesCreate) from the API's OpenAPI document, saved as openapi.json beside this file.
import { defineConfig } from '@hey-api/openapi-ts';

export default defineConfig({
  input: 'openapi.json',
  output: 'generated',
  plugins: ['@hey-api/typescript', '@hey-api/sdk', '@hey-api/client-fetch'],
  logs: { file: false },
});

"""closing the books: receipts, possible duplicates, the chart of accounts, periods, journals and exports

- `attachments` (receipts on entries: type from their first bytes, SHA-256 kept) and `entry_duplicates` (what the
  check at submit found, until dismissed with a reason); `pg_trgm` for the vendor similarity it uses;
- `accounts` and `account_mappings`; `periods` (a closed month), `journals` and `journal_lines` (written once when a
  month closes) and `export_batches` (numbered, immutable exports of a closed month);
- the closed period's control, in the database whoever writes: triggers on `entries` and `approval_steps` refuse a
  change to an entry dated in a closed month (SQLSTATE LC409, domain/ledger/periods.py).

Revision ID: 0014_closing_the_books
Revises: 0013_invoices
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0014_closing_the_books'
down_revision: str | Sequence[str] | None = '0013_invoices'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A closed month's entries cannot change (domain/ledger/periods.py). SQLSTATE LC409 ("ledger: closed"): a class no
# standard code uses, so psycopg raises it as a plain DatabaseError (not an OperationalError, which reads as an outage),
# and the API and the approval activities turn it into a 409.
PERIOD_FUNCTIONS = [
    # The month of `day` as YYYY-MM when it is closed, else NULL. Every writer of a month takes the month's advisory
    # lock shared and closing takes it alone (domain/ledger/periods.py), so a close waits for the writes under way
    # (and counts what they committed) and the writes that come after it find it closed. Taken before the read: in a
    # function each statement sees what was committed when it began.
    """
    CREATE FUNCTION period_closed(day date) RETURNS text LANGUAGE plpgsql AS $$
    DECLARE
        first_day date := date_trunc('month', day)::date;
    BEGIN
        -- 1347568707: 'PRDC' in ASCII, the class of the period locks (domain/ledger/periods.py PERIOD_LOCK)
        PERFORM pg_advisory_xact_lock_shared(1347568707, (extract(year FROM first_day) * 12
                                                           + extract(month FROM first_day) - 1)::int);
        IF EXISTS (SELECT 1 FROM periods p WHERE p.month = first_day AND p.status = 'closed') THEN
            RETURN to_char(first_day, 'YYYY-MM');
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION period_refuse(closed text) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the period % is closed', closed USING ERRCODE = 'LC409',
            DETAIL = 'entries dated in a closed month cannot be created, edited, submitted or decided',
            HINT = 'an admin may reopen the period (POST /api/v1/periods/' || closed || '/reopen)';
    END
    $$
    """,
    # An entry dated in a closed month (before or after the change) cannot be inserted or changed; only the row's
    # own upkeep (updated_at, version: the other BEFORE triggers) may move, and a write that changes nothing passes.
    # A draft may still be deleted: a draft is in no journal.
    """
    CREATE FUNCTION entry_period_open() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        closed text := period_closed(NEW.entry_date);
    BEGIN
        IF TG_OP = 'UPDATE' AND closed IS NULL
           AND date_trunc('month', OLD.entry_date) <> date_trunc('month', NEW.entry_date) THEN
            closed := period_closed(OLD.entry_date);
        END IF;
        IF closed IS NULL THEN
            RETURN NEW;
        END IF;
        IF TG_OP = 'UPDATE'
           AND to_jsonb(NEW) - '{updated_at,version}'::text[] = to_jsonb(OLD) - '{updated_at,version}'::text[] THEN
            RETURN NEW;
        END IF;
        PERFORM period_refuse(closed);
        RETURN NULL;
    END
    $$
    """,
    # A decision on a step of an entry's request (approve, reject, return for changes) is refused when the entry is
    # dated in a closed month, whoever records it (the workflow's activity, or an operator's SQL).
    """
    CREATE FUNCTION approval_step_period_open() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        day date;
        closed text;
    BEGIN
        SELECT e.entry_date INTO day FROM approval_requests r JOIN entries e ON e.id = r.entry_id
        WHERE r.id = NEW.request_id;
        IF day IS NOT NULL THEN
            closed := period_closed(day);
            IF closed IS NOT NULL THEN
                PERFORM period_refuse(closed);
            END IF;
        END IF;
        RETURN NEW;
    END
    $$
    """,
]
PERIOD_TRIGGERS = [
    "CREATE TRIGGER entries_period_open BEFORE INSERT OR UPDATE ON entries "
    "FOR EACH ROW EXECUTE FUNCTION entry_period_open()",
    "CREATE TRIGGER approval_steps_period_open BEFORE UPDATE OF status ON approval_steps FOR EACH ROW "
    "WHEN (OLD.status = 'pending' AND NEW.status IN ('approved', 'rejected', 'changes_requested')) "
    "EXECUTE FUNCTION approval_step_period_open()",
]


def upgrade() -> None:
    # pg_trgm's similarity() for the duplicate check. Trusted since PostgreSQL 13: the database's owner creates it,
    # no superuser needed. Where it is not installed (the embedded PostgreSQL of `make dev` ships no contrib
    # modules), a SQL function of the same name computes the same measure: the shared share of the two texts'
    # trigrams (each lower-cased alphanumeric word padded with two spaces before and one after), as pg_trgm does.
    op.execute(
        """
        DO $$
        BEGIN
          IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
            CREATE EXTENSION IF NOT EXISTS pg_trgm;
          ELSIF to_regprocedure('similarity(text, text)') IS NULL THEN
            CREATE FUNCTION similarity(a text, b text) RETURNS real LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $f$
              WITH ta AS (
                SELECT DISTINCT substr('  ' || word || ' ', i, 3) AS g
                FROM regexp_split_to_table(lower(coalesce(a, '')), '[^[:alnum:]]+') AS words(word),
                     generate_series(1, length(word) + 1) AS i
                WHERE word <> ''
              ), tb AS (
                SELECT DISTINCT substr('  ' || word || ' ', i, 3) AS g
                FROM regexp_split_to_table(lower(coalesce(b, '')), '[^[:alnum:]]+') AS words(word),
                     generate_series(1, length(word) + 1) AS i
                WHERE word <> ''
              ), counted AS (
                SELECT (SELECT count(*) FROM (SELECT g FROM ta INTERSECT SELECT g FROM tb) x) AS shared,
                       (SELECT count(*) FROM (SELECT g FROM ta UNION SELECT g FROM tb) y) AS total
              )
              SELECT CASE WHEN total = 0 THEN 0::real ELSE (shared::real / total::real) END FROM counted
            $f$;
          END IF;
        END
        $$;
        """
    )
    op.create_table('accounts',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('type', sa.String(length=10), nullable=False),
    sa.Column('tax_code', sa.String(length=20), nullable=True),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("type IN ('asset', 'liability', 'equity', 'revenue', 'expense')", name=op.f('ck_accounts_type_known')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('code', name=op.f('uq_accounts_code'))
    )
    op.create_table('account_mappings',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('key', sa.String(length=200), server_default='', nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("(kind IN ('category', 'source')) = (key <> '')", name=op.f('ck_account_mappings_keyed_by_kind')),
    sa.CheckConstraint("kind IN ('category', 'source', 'payable', 'receivable', 'cash', 'tax', 'fx_gain', 'fx_loss', 'rounding')", name=op.f('ck_account_mappings_kind_known')),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_mappings_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_mappings')),
    sa.UniqueConstraint('kind', 'key', name=op.f('uq_account_mappings_kind_key'))
    )
    op.create_table('periods',
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('closed_by_id', sa.BigInteger(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reopened_by_id', sa.BigInteger(), nullable=True),
    sa.Column('reopened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closings', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.CheckConstraint("status IN ('open', 'closed')", name=op.f('ck_periods_status_known')),
    sa.CheckConstraint('EXTRACT(DAY FROM month) = 1', name=op.f('ck_periods_first_of_month')),
    sa.ForeignKeyConstraint(['closed_by_id'], ['users.id'], name=op.f('fk_periods_closed_by_id_users')),
    sa.ForeignKeyConstraint(['reopened_by_id'], ['users.id'], name=op.f('fk_periods_reopened_by_id_users')),
    sa.PrimaryKeyConstraint('month', name=op.f('pk_periods'))
    )
    op.create_table('export_batches',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('closing', sa.Integer(), nullable=False),
    sa.Column('format', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=10), server_default='pending', nullable=False),
    sa.Column('workflow_id', sa.String(length=100), nullable=False),
    sa.Column('storage_key', sa.String(length=300), nullable=True),
    sa.Column('filename', sa.String(length=200), nullable=True),
    sa.Column('content_type', sa.String(length=100), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('journals', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by_id', sa.BigInteger(), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("format IN ('journal_csv', 'xero', 'quickbooks', 'datev')", name=op.f('ck_export_batches_format_known')),
    sa.CheckConstraint("status IN ('pending', 'completed', 'failed')", name=op.f('ck_export_batches_status_known')),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_export_batches_created_by_id_users')),
    sa.ForeignKeyConstraint(['month'], ['periods.month'], name=op.f('fk_export_batches_month_periods')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_export_batches')),
    sa.UniqueConstraint('number', name=op.f('uq_export_batches_number'))
    )
    op.create_table('journals',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('closing', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=30), nullable=False),
    sa.Column('journal_date', sa.Date(), nullable=False),
    sa.Column('source_kind', sa.String(length=15), nullable=False),
    sa.Column('source_id', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('counterparty', sa.String(length=200), server_default='', nullable=False),
    sa.Column('approved_by', sa.String(length=200), server_default='', nullable=False),
    sa.Column('approved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('audit_hash', sa.String(length=64), server_default='', nullable=False),
    sa.Column('link', sa.String(length=200), server_default='', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("source_kind IN ('entry', 'invoice', 'payment', 'credit_note')", name=op.f('ck_journals_source_known')),
    sa.ForeignKeyConstraint(['month'], ['periods.month'], name=op.f('fk_journals_month_periods')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journals')),
    sa.UniqueConstraint('month', 'closing', 'source_kind', 'source_id', name=op.f('uq_journals_month_closing_source_kind_source_id'))
    )
    op.create_index('ix_journals_month_closing', 'journals', ['month', 'closing'], unique=False)
    op.create_table('attachments',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('entry_id', sa.BigInteger(), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('storage_key', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=10), server_default='stored', nullable=False),
    sa.Column('uploaded_by_id', sa.BigInteger(), nullable=False),
    sa.Column('stored_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("status = 'pending' OR sha256 IS NOT NULL", name=op.f('ck_attachments_stored_has_hash')),
    sa.CheckConstraint("status IN ('pending', 'stored')", name=op.f('ck_attachments_status_known')),
    sa.CheckConstraint('size_bytes >= 0', name=op.f('ck_attachments_size_not_negative')),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_attachments_entry_id_entries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['uploaded_by_id'], ['users.id'], name=op.f('fk_attachments_uploaded_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments')),
    sa.UniqueConstraint('storage_key', name=op.f('uq_attachments_storage_key'))
    )
    op.create_index(op.f('ix_attachments_entry_id'), 'attachments', ['entry_id'], unique=False)
    op.create_index('ix_attachments_sha256', 'attachments', ['sha256'], unique=False, postgresql_where=sa.text('sha256 IS NOT NULL'))
    op.create_table('entry_duplicates',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('entry_id', sa.BigInteger(), nullable=False),
    sa.Column('other_entry_id', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('details', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False),
    sa.Column('dismissed_by_id', sa.BigInteger(), nullable=True),
    sa.Column('dismissed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dismiss_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("reason IN ('similar', 'same_receipt')", name=op.f('ck_entry_duplicates_reason_known')),
    sa.CheckConstraint('entry_id <> other_entry_id', name=op.f('ck_entry_duplicates_not_itself')),
    sa.ForeignKeyConstraint(['dismissed_by_id'], ['users.id'], name=op.f('fk_entry_duplicates_dismissed_by_id_users')),
    sa.ForeignKeyConstraint(['entry_id'], ['entries.id'], name=op.f('fk_entry_duplicates_entry_id_entries'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['other_entry_id'], ['entries.id'], name=op.f('fk_entry_duplicates_other_entry_id_entries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_entry_duplicates')),
    sa.UniqueConstraint('entry_id', 'other_entry_id', 'reason', name=op.f('uq_entry_duplicates_entry_id_other_entry_id_reason'))
    )
    op.create_index(op.f('ix_entry_duplicates_entry_id'), 'entry_duplicates', ['entry_id'], unique=False)
    op.create_table('journal_lines',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('journal_id', sa.BigInteger(), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('account_code', sa.String(length=20), nullable=False),
    sa.Column('account_name', sa.String(length=200), nullable=False),
    sa.Column('debit', sa.Numeric(precision=19, scale=4), nullable=False),
    sa.Column('credit', sa.Numeric(precision=19, scale=4), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('original_amount', sa.Numeric(precision=19, scale=4), nullable=False),
    sa.Column('rate', sa.Numeric(precision=28, scale=12), nullable=False),
    sa.Column('tax_code', sa.String(length=20), server_default='', nullable=False),
    sa.Column('cost_center', sa.String(length=100), server_default='', nullable=False),
    sa.Column('description', sa.Text(), server_default='', nullable=False),
    sa.CheckConstraint('debit >= 0 AND credit >= 0 AND (debit = 0 OR credit = 0)', name=op.f('ck_journal_lines_one_side')),
    sa.ForeignKeyConstraint(['journal_id'], ['journals.id'], name=op.f('fk_journal_lines_journal_id_journals'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_journal_lines')),
    sa.UniqueConstraint('journal_id', 'line_no', name=op.f('uq_journal_lines_journal_id_line_no'))
    )
    for table in ("accounts", "account_mappings"):
        op.execute(f"CREATE TRIGGER {table}_touched BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION touch_row()")
    for statement in PERIOD_FUNCTIONS + PERIOD_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER approval_steps_period_open ON approval_steps")
    op.execute("DROP TRIGGER entries_period_open ON entries")
    for function in ("approval_step_period_open()", "entry_period_open()", "period_refuse(text)", "period_closed(date)"):
        op.execute(f"DROP FUNCTION {function}")
    op.drop_table('journal_lines')
    op.drop_index(op.f('ix_entry_duplicates_entry_id'), table_name='entry_duplicates')
    op.drop_table('entry_duplicates')
    op.drop_index('ix_attachments_sha256', table_name='attachments', postgresql_where=sa.text('sha256 IS NOT NULL'))
    op.drop_index(op.f('ix_attachments_entry_id'), table_name='attachments')
    op.drop_table('attachments')
    op.drop_index('ix_journals_month_closing', table_name='journals')
    op.drop_table('journals')
    op.drop_table('export_batches')
    op.drop_table('periods')
    op.drop_table('account_mappings')
    op.drop_table('accounts')
    # pg_trgm stays: other databases' objects may use it, and it costs nothing unused. The stand-in goes.
    op.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN "
        "DROP FUNCTION IF EXISTS similarity(text, text); END IF; END $$"
    )

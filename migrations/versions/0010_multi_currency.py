"""multi-currency: entries in any ISO 4217 currency, exchange rates, the base amount locked at submit

- `entries.amount` keeps up to four decimal places (ISO 4217's largest minor unit; each currency's own is checked by
  the application: JPY 0, BHD 3, most 2).
- `entries` gain the rate locked at submit: `base_currency`, `fx_rate` (units of the base currency for one unit of
  the entry's), `rate_date`, `rate_source` (`base`, `ecb`, `manual`) and `base_amount`. Entries submitted before this
  were in the base currency: they get rate 1 from source `base`.
- `approval_requests` gain the entry's own `currency` and `original_amount` and the locked rate; their `amount`
  stays the amount limits compare, now the base amount.
- `fx_rates`: one rate a currency, day and source, as "1 EUR = rate units of the currency" (the ECB's form); cross
  rates go through EUR.
- `dashboard_entry_totals` and its siblings now sum base amounts (the trigger of migration 0007 moves to
  `base_amount`), and `dashboard_currency_totals` keeps per owner, month, kind, status and currency the originals
  beside their base amounts.
- `app_state` remembers the base currency the books are kept in, so a changed BASE_CURRENCY on a database with
  entries is refused at start instead of silently mixing currencies.

Revision ID: 0010_multi_currency
Revises: 0009_keyed_audit_session_end
"""

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0010_multi_currency"
down_revision: str | Sequence[str] | None = "0009_keyed_audit_session_end"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AGGREGATED = "('pending', 'approved', 'rejected', 'withdrawn', 'expired')"
MONEY = sa.Numeric(19, 4)
RATE = sa.Numeric(28, 12)

ENTRY_TOTALS = """
CREATE OR REPLACE FUNCTION dashboard_entry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_key text[];
    new_key text[];
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.status IN {aggregated} THEN
        old_key := ARRAY[OLD.owner_id::text, OLD.kind::text, date_trunc('month', OLD.entry_date)::date::text,
                         OLD.category::text, OLD.status::text, OLD.currency::text];
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.status IN {aggregated} THEN
        new_key := ARRAY[NEW.owner_id::text, NEW.kind::text, date_trunc('month', NEW.entry_date)::date::text,
                         NEW.category::text, NEW.status::text, NEW.currency::text];
    END IF;
    IF old_key IS NOT DISTINCT FROM new_key AND (TG_OP <> 'UPDATE'
            OR (OLD.amount = NEW.amount AND OLD.base_amount IS NOT DISTINCT FROM NEW.base_amount)) THEN
        RETURN NULL;
    END IF;
    -- The lesser key first (in every table its row's key sorts the same way), then the other.
    IF old_key IS NOT NULL AND (new_key IS NULL OR old_key < new_key) THEN
        PERFORM dashboard_entry_delta(OLD.owner_id, OLD.kind, old_key[3]::date, OLD.category, OLD.status, -1,
                                      -coalesce(OLD.base_amount, OLD.amount), OLD.currency, -OLD.amount);
        old_key := NULL;
    END IF;
    IF new_key IS NOT NULL THEN
        PERFORM dashboard_entry_delta(NEW.owner_id, NEW.kind, new_key[3]::date, NEW.category, NEW.status, 1,
                                      coalesce(NEW.base_amount, NEW.amount), NEW.currency, NEW.amount);
    END IF;
    IF old_key IS NOT NULL THEN
        PERFORM dashboard_entry_delta(OLD.owner_id, OLD.kind, old_key[3]::date, OLD.category, OLD.status, -1,
                                      -coalesce(OLD.base_amount, OLD.amount), OLD.currency, -OLD.amount);
    END IF;
    RETURN NULL;
END
$$
""".format(aggregated=AGGREGATED)

ENTRY_DELTA = """
CREATE FUNCTION dashboard_entry_delta(
    p_owner bigint, p_kind text, p_month date, p_category text, p_status text, p_count integer, p_base numeric,
    p_currency text, p_original numeric
) RETURNS void LANGUAGE sql AS $$
    WITH by_entry AS (
        INSERT INTO dashboard_entry_totals AS t (owner_id, kind, month, category, status, entry_count, amount_total)
        VALUES (p_owner, p_kind, p_month, p_category, p_status, p_count, p_base)
        ON CONFLICT ON CONSTRAINT pk_dashboard_entry_totals
        DO UPDATE SET entry_count = t.entry_count + excluded.entry_count,
                      amount_total = t.amount_total + excluded.amount_total
    ), by_owner AS (
        INSERT INTO dashboard_owner_totals AS t (owner_id, status, month, kind, entry_count, amount_total)
        VALUES (p_owner, p_status, p_month, p_kind, p_count, p_base)
        ON CONFLICT ON CONSTRAINT pk_dashboard_owner_totals
        DO UPDATE SET entry_count = t.entry_count + excluded.entry_count,
                      amount_total = t.amount_total + excluded.amount_total
    ), by_category AS (
        INSERT INTO dashboard_category_totals AS t (status, month, kind, category, entry_count, amount_total)
        VALUES (p_status, p_month, p_kind, p_category, p_count, p_base)
        ON CONFLICT ON CONSTRAINT pk_dashboard_category_totals
        DO UPDATE SET entry_count = t.entry_count + excluded.entry_count,
                      amount_total = t.amount_total + excluded.amount_total
    )
    INSERT INTO dashboard_currency_totals AS t (owner_id, month, kind, status, currency, entry_count, original_total,
                                                base_total)
    VALUES (p_owner, p_month, p_kind, p_status, p_currency, p_count, p_original, p_base)
    ON CONFLICT ON CONSTRAINT pk_dashboard_currency_totals
    DO UPDATE SET entry_count = t.entry_count + excluded.entry_count,
                  original_total = t.original_total + excluded.original_total,
                  base_total = t.base_total + excluded.base_total
$$
"""


def _base_currency() -> str:
    # The books so far were kept in the configured base currency (the only one entries could be in).
    return (os.environ.get("BASE_CURRENCY") or "USD").strip().upper()


def upgrade() -> None:
    # The dashboard trigger names the amount column (UPDATE OF): it goes first and comes back on base amounts below.
    op.execute("DROP TRIGGER dashboard_entry_changed ON entries")
    for table in ("dashboard_entry_totals", "dashboard_owner_totals", "dashboard_category_totals"):
        op.alter_column(table, "amount_total", type_=sa.Numeric(24, 4))
    op.alter_column("entries", "amount", type_=MONEY)
    op.add_column("entries", sa.Column("base_currency", sa.String(3)))
    op.add_column("entries", sa.Column("fx_rate", RATE))
    op.add_column("entries", sa.Column("rate_date", sa.Date()))
    op.add_column("entries", sa.Column("rate_source", sa.String(10)))
    op.add_column("entries", sa.Column("base_amount", MONEY))
    # The backfill is no edit of anyone's entry: it moves neither their version (ETag) nor their updated_at.
    op.execute("ALTER TABLE entries DISABLE TRIGGER entries_touched, DISABLE TRIGGER entries_version_moves")
    op.execute(
        "UPDATE entries SET base_currency = currency, fx_rate = 1, rate_date = entry_date, rate_source = 'base', "
        "base_amount = amount WHERE status <> 'draft'"
    )
    op.execute("ALTER TABLE entries ENABLE TRIGGER entries_touched, ENABLE TRIGGER entries_version_moves")
    op.alter_column("approval_requests", "amount", type_=MONEY)
    op.add_column("approval_requests", sa.Column("currency", sa.String(3)))
    op.add_column("approval_requests", sa.Column("original_amount", MONEY))
    op.add_column("approval_requests", sa.Column("fx_rate", RATE))
    op.add_column("approval_requests", sa.Column("rate_date", sa.Date()))
    op.add_column("approval_requests", sa.Column("rate_source", sa.String(10)))
    op.execute("ALTER TABLE approval_requests DISABLE TRIGGER approval_requests_touched")
    op.execute(
        "UPDATE approval_requests r SET currency = e.currency, original_amount = e.amount, fx_rate = 1, "
        "rate_date = e.entry_date, rate_source = 'base' FROM entries e WHERE e.id = r.entry_id"
    )
    op.execute("ALTER TABLE approval_requests ENABLE TRIGGER approval_requests_touched")

    op.create_table(
        "fx_rates",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("rate_date", sa.Date(), nullable=False),
        sa.Column("rate", RATE, nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("created_by_id", sa.BigInteger(), sa.ForeignKey("users.id")),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("rate > 0", name="ck_fx_rates_rate_positive"),
        sa.CheckConstraint("source IN ('ecb', 'manual')", name="ck_fx_rates_source_known"),
        sa.UniqueConstraint("currency", "rate_date", "source", name="uq_fx_rates_currency_rate_date_source"),
    )
    op.create_index("ix_fx_rates_currency_date", "fx_rates", ["currency", sa.text("rate_date DESC")])

    op.create_table(
        "dashboard_currency_totals",
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("original_total", sa.Numeric(24, 4), nullable=False, server_default="0"),
        sa.Column("base_total", sa.Numeric(24, 4), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("owner_id", "month", "kind", "status", "currency", name="pk_dashboard_currency_totals"),
    )
    op.execute(
        "INSERT INTO dashboard_currency_totals (owner_id, month, kind, status, currency, entry_count, original_total, "
        "base_total) SELECT owner_id, date_trunc('month', entry_date)::date, kind, status, currency, count(*), "
        f"sum(amount), sum(coalesce(base_amount, amount)) FROM entries WHERE status IN {AGGREGATED} "
        "GROUP BY 1, 2, 3, 4, 5"
    )
    op.execute("DROP FUNCTION dashboard_entry_delta(bigint, text, date, text, text, integer, numeric)")
    op.execute(ENTRY_DELTA)
    op.execute(ENTRY_TOTALS)
    op.execute(
        "CREATE TRIGGER dashboard_entry_changed AFTER INSERT OR DELETE OR UPDATE OF status, amount, base_amount, "
        "currency, kind, owner_id, entry_date, category ON entries FOR EACH ROW EXECUTE FUNCTION "
        "dashboard_entry_changed()"
    )

    op.create_table(
        "app_state",
        sa.Column("key", sa.String(60), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    )
    op.execute(
        sa.text("INSERT INTO app_state (key, value) VALUES ('base_currency', :base)").bindparams(base=_base_currency())
    )


def _row_maintenance() -> ModuleType:
    """Migration 0007, whose dashboard function and trigger (on original amounts) a downgrade puts back."""
    path = Path(__file__).with_name("0007_row_maintenance.py")
    spec = importlib.util.spec_from_file_location("row_maintenance_0007", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def downgrade() -> None:
    # Only books that were never anything but the base currency can lose the columns that say so.
    foreign = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM entries WHERE currency <> coalesce(base_currency, currency)")
    )
    if foreign:
        raise RuntimeError(
            f"{foreign} entries are in a currency other than the books' base currency: a single-currency schema "
            "cannot hold them"
        )
    op.drop_table("app_state")
    op.execute("DROP TRIGGER dashboard_entry_changed ON entries")
    op.execute("DROP FUNCTION dashboard_entry_changed()")
    op.execute("DROP FUNCTION dashboard_entry_delta(bigint, text, date, text, text, integer, numeric, text, numeric)")
    op.drop_table("dashboard_currency_totals")
    op.drop_index("ix_fx_rates_currency_date", table_name="fx_rates")
    op.drop_table("fx_rates")
    for column in ("rate_source", "rate_date", "fx_rate", "original_amount", "currency"):
        op.drop_column("approval_requests", column)
    op.alter_column("approval_requests", "amount", type_=sa.Numeric(18, 2))
    for column in ("base_amount", "rate_source", "rate_date", "fx_rate", "base_currency"):
        op.drop_column("entries", column)
    op.alter_column("entries", "amount", type_=sa.Numeric(18, 2))
    for table in ("dashboard_entry_totals", "dashboard_owner_totals", "dashboard_category_totals"):
        op.alter_column(table, "amount_total", type_=sa.Numeric(20, 2))
    row_maintenance = _row_maintenance()
    for statement in row_maintenance.FUNCTIONS[2:] + row_maintenance.TRIGGERS[-1:]:
        op.execute(statement)

"""row maintenance in the database: updated_at, the entry's version and the dashboard's entry totals, by triggers

Every writer (the plain SQL of the approval path, the ORM of the other features, an operator's psql) gets the same
rules, written once:
- `updated_at` is set on every UPDATE of a table that has it (the statements and the ORM no longer set it);
- an entry's `version` (its ETag) moves on with every UPDATE of its row;
- `dashboard_entry_totals`, `dashboard_owner_totals` and `dashboard_category_totals` follow every insert, change and
  delete of an entry (before, `domain.dashboard.aggregates.entry_status_changed` was called by hand from five places;
  the approval counters were already kept by triggers, migration 0003). As before, only statuses in which an entry
  can no longer be edited are counted, each change is a relative delta (concurrent writers never lose one), and the
  (at most two) buckets a change moves are written in key order, so two transactions cannot lock them crosswise.

Revision ID: 0007_row_maintenance
Revises: 0006_covering_list_indexes
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007_row_maintenance"
down_revision: str | Sequence[str] | None = "0006_covering_list_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOUCHED = ("users", "entries", "approval_requests", "approval_steps", "reports", "report_schedules")
AGGREGATED = "('pending', 'approved', 'rejected', 'withdrawn', 'expired')"

FUNCTIONS = [
    """
    CREATE FUNCTION touch_row() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.updated_at := now();
        RETURN NEW;
    END
    $$
    """,
    # The version is what If-Match compares: every write to the entry's row makes a copy read before it stale.
    """
    CREATE FUNCTION entry_version_moves() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        NEW.version := OLD.version + 1;
        RETURN NEW;
    END
    $$
    """,
    """
    CREATE FUNCTION dashboard_entry_delta(
        p_owner bigint, p_kind text, p_month date, p_category text, p_status text, p_count integer, p_amount numeric
    ) RETURNS void LANGUAGE sql AS $$
        WITH by_entry AS (
            INSERT INTO dashboard_entry_totals AS t (owner_id, kind, month, category, status, entry_count, amount_total)
            VALUES (p_owner, p_kind, p_month, p_category, p_status, p_count, p_amount)
            ON CONFLICT ON CONSTRAINT pk_dashboard_entry_totals
            DO UPDATE SET entry_count = t.entry_count + excluded.entry_count,
                          amount_total = t.amount_total + excluded.amount_total
        ), by_owner AS (
            INSERT INTO dashboard_owner_totals AS t (owner_id, status, month, kind, entry_count, amount_total)
            VALUES (p_owner, p_status, p_month, p_kind, p_count, p_amount)
            ON CONFLICT ON CONSTRAINT pk_dashboard_owner_totals
            DO UPDATE SET entry_count = t.entry_count + excluded.entry_count,
                          amount_total = t.amount_total + excluded.amount_total
        )
        INSERT INTO dashboard_category_totals AS t (status, month, kind, category, entry_count, amount_total)
        VALUES (p_status, p_month, p_kind, p_category, p_count, p_amount)
        ON CONFLICT ON CONSTRAINT pk_dashboard_category_totals
        DO UPDATE SET entry_count = t.entry_count + excluded.entry_count,
                      amount_total = t.amount_total + excluded.amount_total
    $$
    """,
    f"""
    CREATE FUNCTION dashboard_entry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        old_key text[];
        new_key text[];
    BEGIN
        IF TG_OP <> 'INSERT' AND OLD.status IN {AGGREGATED} THEN
            old_key := ARRAY[OLD.owner_id::text, OLD.kind::text, date_trunc('month', OLD.entry_date)::date::text,
                             OLD.category::text, OLD.status::text];
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.status IN {AGGREGATED} THEN
            new_key := ARRAY[NEW.owner_id::text, NEW.kind::text, date_trunc('month', NEW.entry_date)::date::text,
                             NEW.category::text, NEW.status::text];
        END IF;
        IF old_key IS NOT DISTINCT FROM new_key AND (TG_OP <> 'UPDATE' OR OLD.amount = NEW.amount) THEN
            RETURN NULL;
        END IF;
        -- The lesser key first (in every table its row's key sorts the same way), then the other.
        IF old_key IS NOT NULL AND (new_key IS NULL OR old_key < new_key) THEN
            PERFORM dashboard_entry_delta(OLD.owner_id, OLD.kind, old_key[3]::date, OLD.category, OLD.status,
                                          -1, -OLD.amount);
            old_key := NULL;
        END IF;
        IF new_key IS NOT NULL THEN
            PERFORM dashboard_entry_delta(NEW.owner_id, NEW.kind, new_key[3]::date, NEW.category, NEW.status,
                                          1, NEW.amount);
        END IF;
        IF old_key IS NOT NULL THEN
            PERFORM dashboard_entry_delta(OLD.owner_id, OLD.kind, old_key[3]::date, OLD.category, OLD.status,
                                          -1, -OLD.amount);
        END IF;
        RETURN NULL;
    END
    $$
    """,
]

TRIGGERS = [
    *(
        f"CREATE TRIGGER {table}_touched BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION touch_row()"
        for table in TOUCHED
    ),
    "CREATE TRIGGER entries_version_moves BEFORE UPDATE ON entries FOR EACH ROW EXECUTE FUNCTION entry_version_moves()",
    """
    CREATE TRIGGER dashboard_entry_changed
    AFTER INSERT OR DELETE OR UPDATE OF status, amount, kind, owner_id, entry_date, category ON entries
    FOR EACH ROW EXECUTE FUNCTION dashboard_entry_changed()
    """,
]


def upgrade() -> None:
    for statement in FUNCTIONS + TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER dashboard_entry_changed ON entries")
    op.execute("DROP TRIGGER entries_version_moves ON entries")
    for table in TOUCHED:
        op.execute(f"DROP TRIGGER {table}_touched ON {table}")
    for function in ("dashboard_entry_changed()", "dashboard_entry_delta(bigint, text, date, text, text, integer, numeric)",
                     "entry_version_moves()", "touch_row()"):  # fmt: skip
        op.execute(f"DROP FUNCTION {function}")

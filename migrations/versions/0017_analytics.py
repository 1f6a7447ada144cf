"""analytics: counterparty totals, weekly approved expenses, approval step cycle facts and their counts, kept by triggers

- `approval_steps.opened_at`: when the step was opened, on the clock of whoever opened it (the workflow's for an
  escalation's next step), so a step's cycle time is measured on one clock (its `decided_at` is the workflow's).
  Existing steps take their `created_at`.
- `analytics_counterparty_totals`: approved entries per owner, kind, month (of the entry date) and counterparty (an
  expense's vendor, a revenue entry's source; '' when none), in the base currency.
- `analytics_expense_weeks`: approved expenses per owner and ISO week (Monday, UTC) of their approval: what the cash
  forecast counts as payable.
- `analytics_step_cycles`: one row per closed approval step (approved, rejected, changes requested, escalated or
  expired; withdrawn steps are the requester's doing, not a wait on an approver), with its requester, level,
  approver, cycle time (decided_at - opened_at), cycle bucket (`dashboard_cycle_bucket`) and whether it was closed
  after its reminder time (an SLA breach).
- `analytics_step_totals` (per month, level, approver and status) and `analytics_step_histogram` (per month, level
  and cycle bucket) count those rows, kept by a trigger on `analytics_step_cycles`.
- `analytics_request_outcomes`: decided requests (approved, rejected) per requester, month of the decision, status
  and whether the approval was automatic (approved with an empty chain).

Every table is kept by row triggers in the writer's own transaction, each change a relative delta written in key
order (as the dashboard's, migrations 0003 and 0007); `domain.analytics.aggregates` says what each must equal.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CLOSED_STEP = "('approved', 'rejected', 'changes_requested', 'escalated', 'expired')"

FUNCTIONS = [
    # The Monday of an instant's ISO week, UTC.
    """
    CREATE FUNCTION analytics_week(moment timestamptz) RETURNS date
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN date_trunc('week', moment AT TIME ZONE 'UTC')::date
    """,
    """
    CREATE FUNCTION analytics_counterparty_delta(
        p_owner bigint, p_kind text, p_month date, p_counterparty text, p_count integer, p_amount numeric
    ) RETURNS void LANGUAGE sql AS $$
        INSERT INTO analytics_counterparty_totals AS t (owner_id, kind, month, counterparty, entry_count, amount_total)
        VALUES (p_owner, p_kind, p_month, p_counterparty, p_count, p_amount)
        ON CONFLICT ON CONSTRAINT pk_analytics_counterparty_totals
        DO UPDATE SET entry_count = t.entry_count + excluded.entry_count,
                      amount_total = t.amount_total + excluded.amount_total
    $$
    """,
    """
    CREATE FUNCTION analytics_expense_week_delta(p_owner bigint, p_week date, p_count integer, p_amount numeric)
    RETURNS void LANGUAGE sql AS $$
        INSERT INTO analytics_expense_weeks AS t (owner_id, week, entry_count, amount_total)
        VALUES (p_owner, p_week, p_count, p_amount)
        ON CONFLICT ON CONSTRAINT pk_analytics_expense_weeks
        DO UPDATE SET entry_count = t.entry_count + excluded.entry_count,
                      amount_total = t.amount_total + excluded.amount_total
    $$
    """,
    # Approved entries only. Each table's (at most two) rows are written lesser key first.
    """
    CREATE FUNCTION analytics_entry_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        old_party text[];
        new_party text[];
        old_week text[];
        new_week text[];
        old_amount numeric;
        new_amount numeric;
    BEGIN
        IF TG_OP <> 'INSERT' AND OLD.status = 'approved' THEN
            old_amount := coalesce(OLD.base_amount, OLD.amount);
            old_party := ARRAY[OLD.owner_id::text, OLD.kind::text, date_trunc('month', OLD.entry_date)::date::text,
                               CASE WHEN OLD.kind = 'expense' THEN coalesce(OLD.vendor, '')
                                    ELSE coalesce(OLD.source, '') END];
            IF OLD.kind = 'expense' AND OLD.decided_at IS NOT NULL THEN
                old_week := ARRAY[OLD.owner_id::text, analytics_week(OLD.decided_at)::text];
            END IF;
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.status = 'approved' THEN
            new_amount := coalesce(NEW.base_amount, NEW.amount);
            new_party := ARRAY[NEW.owner_id::text, NEW.kind::text, date_trunc('month', NEW.entry_date)::date::text,
                               CASE WHEN NEW.kind = 'expense' THEN coalesce(NEW.vendor, '')
                                    ELSE coalesce(NEW.source, '') END];
            IF NEW.kind = 'expense' AND NEW.decided_at IS NOT NULL THEN
                new_week := ARRAY[NEW.owner_id::text, analytics_week(NEW.decided_at)::text];
            END IF;
        END IF;
        IF old_party IS DISTINCT FROM new_party OR old_amount IS DISTINCT FROM new_amount THEN
            IF old_party IS NOT NULL AND (new_party IS NULL OR old_party < new_party) THEN
                PERFORM analytics_counterparty_delta(old_party[1]::bigint, old_party[2], old_party[3]::date,
                                                     old_party[4], -1, -old_amount);
                old_party := NULL;
            END IF;
            IF new_party IS NOT NULL THEN
                PERFORM analytics_counterparty_delta(new_party[1]::bigint, new_party[2], new_party[3]::date,
                                                     new_party[4], 1, new_amount);
            END IF;
            IF old_party IS NOT NULL THEN
                PERFORM analytics_counterparty_delta(old_party[1]::bigint, old_party[2], old_party[3]::date,
                                                     old_party[4], -1, -old_amount);
            END IF;
        END IF;
        IF old_week IS DISTINCT FROM new_week OR (old_week IS NOT NULL AND old_amount IS DISTINCT FROM new_amount) THEN
            IF old_week IS NOT NULL AND (new_week IS NULL OR old_week < new_week) THEN
                PERFORM analytics_expense_week_delta(old_week[1]::bigint, old_week[2]::date, -1, -old_amount);
                old_week := NULL;
            END IF;
            IF new_week IS NOT NULL THEN
                PERFORM analytics_expense_week_delta(new_week[1]::bigint, new_week[2]::date, 1, new_amount);
            END IF;
            IF old_week IS NOT NULL THEN
                PERFORM analytics_expense_week_delta(old_week[1]::bigint, old_week[2]::date, -1, -old_amount);
            END IF;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    # One fact row per closed step (the requester read from its request); none for an open or withdrawn step.
    f"""
    CREATE FUNCTION analytics_step_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP <> 'DELETE' AND NEW.status IN {CLOSED_STEP} AND NEW.decided_at IS NOT NULL THEN
            INSERT INTO analytics_step_cycles AS c (step_id, requester_id, level, approver_id, status, opened_at,
                closed_at, cycle_seconds, bucket, breached)
            SELECT NEW.id, r.requester_id, NEW.level, NEW.approver_id, NEW.status, NEW.opened_at, NEW.decided_at,
                greatest(date_part('epoch', NEW.decided_at - NEW.opened_at), 0),
                dashboard_cycle_bucket(NEW.decided_at - NEW.opened_at),
                NEW.remind_at IS NOT NULL AND NEW.decided_at > NEW.remind_at
            FROM approval_requests r WHERE r.id = NEW.request_id
            ON CONFLICT (step_id) DO UPDATE SET requester_id = excluded.requester_id, level = excluded.level,
                approver_id = excluded.approver_id, status = excluded.status, opened_at = excluded.opened_at,
                closed_at = excluded.closed_at, cycle_seconds = excluded.cycle_seconds, bucket = excluded.bucket,
                breached = excluded.breached
            WHERE (c.requester_id, c.level, c.approver_id, c.status, c.opened_at, c.closed_at, c.breached)
                IS DISTINCT FROM (excluded.requester_id, excluded.level, excluded.approver_id, excluded.status,
                                  excluded.opened_at, excluded.closed_at, excluded.breached);
        ELSIF TG_OP <> 'INSERT' THEN
            DELETE FROM analytics_step_cycles WHERE step_id = OLD.id;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION analytics_step_count_delta(
        p_month date, p_level integer, p_approver bigint, p_status text, p_bucket integer, p_breached boolean,
        p_delta integer
    ) RETURNS void LANGUAGE sql AS $$
        WITH totals AS (
            INSERT INTO analytics_step_totals AS t (month, level, approver_id, status, steps, breached)
            VALUES (p_month, p_level, p_approver, p_status, p_delta, CASE WHEN p_breached THEN p_delta ELSE 0 END)
            ON CONFLICT ON CONSTRAINT pk_analytics_step_totals
            DO UPDATE SET steps = t.steps + excluded.steps, breached = t.breached + excluded.breached
        )
        INSERT INTO analytics_step_histogram AS h (month, level, bucket, steps)
        VALUES (p_month, p_level, p_bucket, p_delta)
        ON CONFLICT ON CONSTRAINT pk_analytics_step_histogram DO UPDATE SET steps = h.steps + excluded.steps
    $$
    """,
    """
    CREATE FUNCTION analytics_step_cycle_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        old_key text[];
        new_key text[];
    BEGIN
        IF TG_OP <> 'INSERT' THEN
            old_key := ARRAY[dashboard_month(OLD.closed_at)::text, lpad(OLD.level::text, 6, '0'),
                             lpad(OLD.approver_id::text, 20, '0'), OLD.status, lpad(OLD.bucket::text, 10, '0'),
                             OLD.breached::text];
        END IF;
        IF TG_OP <> 'DELETE' THEN
            new_key := ARRAY[dashboard_month(NEW.closed_at)::text, lpad(NEW.level::text, 6, '0'),
                             lpad(NEW.approver_id::text, 20, '0'), NEW.status, lpad(NEW.bucket::text, 10, '0'),
                             NEW.breached::text];
        END IF;
        IF old_key IS NOT DISTINCT FROM new_key THEN
            RETURN NULL;
        END IF;
        IF old_key IS NOT NULL AND (new_key IS NULL OR old_key < new_key) THEN
            PERFORM analytics_step_count_delta(old_key[1]::date, OLD.level, OLD.approver_id, OLD.status, OLD.bucket,
                                               OLD.breached, -1);
            old_key := NULL;
        END IF;
        IF new_key IS NOT NULL THEN
            PERFORM analytics_step_count_delta(new_key[1]::date, NEW.level, NEW.approver_id, NEW.status, NEW.bucket,
                                               NEW.breached, 1);
        END IF;
        IF old_key IS NOT NULL THEN
            PERFORM analytics_step_count_delta(old_key[1]::date, OLD.level, OLD.approver_id, OLD.status, OLD.bucket,
                                               OLD.breached, -1);
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION analytics_request_outcome_delta(
        p_requester bigint, p_month date, p_status text, p_auto boolean, p_delta integer
    ) RETURNS void LANGUAGE sql AS $$
        INSERT INTO analytics_request_outcomes AS t (requester_id, month, status, auto_approved, requests)
        VALUES (p_requester, p_month, p_status, p_auto, p_delta)
        ON CONFLICT ON CONSTRAINT pk_analytics_request_outcomes DO UPDATE SET requests = t.requests + excluded.requests
    $$
    """,
    # Automatic approval is read from the row itself (an approved request whose pinned chain is empty), so the key a
    # change removes is always the one an earlier change added.
    """
    CREATE FUNCTION analytics_request_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        old_key text[];
        new_key text[];
    BEGIN
        IF TG_OP <> 'INSERT' AND OLD.status IN ('approved', 'rejected') AND OLD.decided_at IS NOT NULL THEN
            old_key := ARRAY[lpad(OLD.requester_id::text, 20, '0'), dashboard_month(OLD.decided_at)::text, OLD.status,
                             (OLD.status = 'approved' AND jsonb_array_length(OLD.chain) = 0)::text];
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.status IN ('approved', 'rejected') AND NEW.decided_at IS NOT NULL THEN
            new_key := ARRAY[lpad(NEW.requester_id::text, 20, '0'), dashboard_month(NEW.decided_at)::text, NEW.status,
                             (NEW.status = 'approved' AND jsonb_array_length(NEW.chain) = 0)::text];
        END IF;
        IF old_key IS NOT DISTINCT FROM new_key THEN
            RETURN NULL;
        END IF;
        IF old_key IS NOT NULL AND (new_key IS NULL OR old_key < new_key) THEN
            PERFORM analytics_request_outcome_delta(OLD.requester_id, old_key[2]::date, old_key[3],
                                                    old_key[4]::boolean, -1);
            old_key := NULL;
        END IF;
        IF new_key IS NOT NULL THEN
            PERFORM analytics_request_outcome_delta(NEW.requester_id, new_key[2]::date, new_key[3],
                                                    new_key[4]::boolean, 1);
        END IF;
        IF old_key IS NOT NULL THEN
            PERFORM analytics_request_outcome_delta(OLD.requester_id, old_key[2]::date, old_key[3],
                                                    old_key[4]::boolean, -1);
        END IF;
        RETURN NULL;
    END
    $$
    """,
]

TRIGGERS = [
    """
    CREATE TRIGGER analytics_entry_changed AFTER INSERT OR DELETE OR UPDATE OF status, amount, base_amount, kind,
        owner_id, entry_date, vendor, source, decided_at ON entries
    FOR EACH ROW EXECUTE FUNCTION analytics_entry_changed()
    """,
    """
    CREATE TRIGGER analytics_step_changed AFTER INSERT OR DELETE OR UPDATE OF status, decided_at, opened_at,
        remind_at, level, approver_id, request_id ON approval_steps
    FOR EACH ROW EXECUTE FUNCTION analytics_step_changed()
    """,
    """
    CREATE TRIGGER analytics_step_cycle_changed AFTER INSERT OR DELETE OR UPDATE ON analytics_step_cycles
    FOR EACH ROW EXECUTE FUNCTION analytics_step_cycle_changed()
    """,
    """
    CREATE TRIGGER analytics_request_changed AFTER INSERT OR DELETE OR UPDATE OF status, decided_at, requester_id,
        chain ON approval_requests
    FOR EACH ROW EXECUTE FUNCTION analytics_request_changed()
    """,
]

# What the triggers would have built, row by row (domain.analytics.aggregates holds the same statements for the
# consistency check).
BACKFILL = [
    """
    INSERT INTO analytics_counterparty_totals (owner_id, kind, month, counterparty, entry_count, amount_total)
    SELECT owner_id, kind, date_trunc('month', entry_date)::date,
        CASE WHEN kind = 'expense' THEN coalesce(vendor, '') ELSE coalesce(source, '') END,
        count(*), sum(coalesce(base_amount, amount))
    FROM entries WHERE status = 'approved' GROUP BY 1, 2, 3, 4
    """,
    """
    INSERT INTO analytics_expense_weeks (owner_id, week, entry_count, amount_total)
    SELECT owner_id, analytics_week(decided_at), count(*), sum(coalesce(base_amount, amount))
    FROM entries WHERE status = 'approved' AND kind = 'expense' AND decided_at IS NOT NULL GROUP BY 1, 2
    """,
    f"""
    INSERT INTO analytics_step_cycles (step_id, requester_id, level, approver_id, status, opened_at, closed_at,
        cycle_seconds, bucket, breached)
    SELECT s.id, r.requester_id, s.level, s.approver_id, s.status, s.opened_at, s.decided_at,
        greatest(date_part('epoch', s.decided_at - s.opened_at), 0), dashboard_cycle_bucket(s.decided_at - s.opened_at),
        s.remind_at IS NOT NULL AND s.decided_at > s.remind_at
    FROM approval_steps s JOIN approval_requests r ON r.id = s.request_id
    WHERE s.status IN {CLOSED_STEP} AND s.decided_at IS NOT NULL
    """,
    """
    INSERT INTO analytics_step_totals (month, level, approver_id, status, steps, breached)
    SELECT dashboard_month(closed_at), level, approver_id, status, count(*), count(*) FILTER (WHERE breached)
    FROM analytics_step_cycles GROUP BY 1, 2, 3, 4
    """,
    """
    INSERT INTO analytics_step_histogram (month, level, bucket, steps)
    SELECT dashboard_month(closed_at), level, bucket, count(*) FROM analytics_step_cycles GROUP BY 1, 2, 3
    """,
    """
    INSERT INTO analytics_request_outcomes (requester_id, month, status, auto_approved, requests)
    SELECT requester_id, dashboard_month(decided_at), status, status = 'approved' AND jsonb_array_length(chain) = 0,
        count(*)
    FROM approval_requests WHERE status IN ('approved', 'rejected') AND decided_at IS NOT NULL GROUP BY 1, 2, 3, 4
    """,
]


def upgrade() -> None:
    op.add_column("approval_steps", sa.Column("opened_at", sa.DateTime(timezone=True)))
    # A backfill, no edit: updated_at stays, and a closed month's steps are not refused.
    op.execute("ALTER TABLE approval_steps DISABLE TRIGGER approval_steps_touched")
    op.execute("UPDATE approval_steps SET opened_at = created_at")
    op.execute("ALTER TABLE approval_steps ENABLE TRIGGER approval_steps_touched")
    op.alter_column("approval_steps", "opened_at", nullable=False, server_default=sa.text("now()"))

    op.create_table(
        "analytics_counterparty_totals",
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("counterparty", sa.String(200), nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("amount_total", sa.Numeric(24, 4), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("owner_id", "kind", "month", "counterparty", name="pk_analytics_counterparty_totals"),
    )
    op.create_index(
        "ix_analytics_counterparty_totals_month",
        "analytics_counterparty_totals",
        ["month"],
        postgresql_include=["kind", "counterparty", "entry_count", "amount_total"],
    )
    op.create_table(
        "analytics_expense_weeks",
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("amount_total", sa.Numeric(24, 4), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("owner_id", "week", name="pk_analytics_expense_weeks"),
    )
    op.create_index(
        "ix_analytics_expense_weeks_week",
        "analytics_expense_weeks",
        ["week"],
        postgresql_include=["entry_count", "amount_total"],
    )
    op.create_table(
        "analytics_step_cycles",
        sa.Column("step_id", sa.BigInteger(), nullable=False),
        sa.Column("requester_id", sa.BigInteger(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("approver_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cycle_seconds", sa.Float(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("breached", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("step_id", name="pk_analytics_step_cycles"),
    )
    op.create_index(
        "ix_analytics_step_cycles_requester_closed",
        "analytics_step_cycles",
        ["requester_id", "closed_at"],
        postgresql_include=["level", "approver_id", "status", "cycle_seconds", "breached"],
    )
    op.create_index(
        "ix_analytics_step_cycles_approver_closed",
        "analytics_step_cycles",
        ["approver_id", "closed_at"],
        postgresql_include=["level", "status", "cycle_seconds", "breached"],
    )
    op.create_index(
        "ix_analytics_step_cycles_level_bucket",
        "analytics_step_cycles",
        ["level", "bucket", "closed_at"],
        postgresql_include=["cycle_seconds"],
    )
    op.create_table(
        "analytics_step_totals",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("approver_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("steps", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("breached", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("month", "level", "approver_id", "status", name="pk_analytics_step_totals"),
    )
    op.create_table(
        "analytics_step_histogram",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("steps", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("month", "level", "bucket", name="pk_analytics_step_histogram"),
    )
    op.create_table(
        "analytics_request_outcomes",
        sa.Column("requester_id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("auto_approved", sa.Boolean(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint(
            "requester_id", "month", "status", "auto_approved", name="pk_analytics_request_outcomes"
        ),
    )
    op.create_index(
        "ix_analytics_request_outcomes_month",
        "analytics_request_outcomes",
        ["month"],
        postgresql_include=["status", "auto_approved", "requests"],
    )
    for statement in FUNCTIONS:
        op.execute(statement)
    for statement in BACKFILL:
        op.execute(statement)
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER analytics_request_changed ON approval_requests")
    op.execute("DROP TRIGGER analytics_step_cycle_changed ON analytics_step_cycles")
    op.execute("DROP TRIGGER analytics_step_changed ON approval_steps")
    op.execute("DROP TRIGGER analytics_entry_changed ON entries")
    op.execute("DROP FUNCTION analytics_request_changed()")
    op.execute("DROP FUNCTION analytics_request_outcome_delta(bigint, date, text, boolean, integer)")
    op.execute("DROP FUNCTION analytics_step_cycle_changed()")
    op.execute("DROP FUNCTION analytics_step_count_delta(date, integer, bigint, text, integer, boolean, integer)")
    op.execute("DROP FUNCTION analytics_step_changed()")
    op.execute("DROP FUNCTION analytics_entry_changed()")
    op.execute("DROP FUNCTION analytics_expense_week_delta(bigint, date, integer, numeric)")
    op.execute("DROP FUNCTION analytics_counterparty_delta(bigint, text, date, text, integer, numeric)")
    op.execute("DROP FUNCTION analytics_week(timestamptz)")
    op.drop_index("ix_analytics_request_outcomes_month", table_name="analytics_request_outcomes")
    op.drop_table("analytics_request_outcomes")
    op.drop_table("analytics_step_histogram")
    op.drop_table("analytics_step_totals")
    op.drop_index("ix_analytics_step_cycles_level_bucket", table_name="analytics_step_cycles")
    op.drop_index("ix_analytics_step_cycles_approver_closed", table_name="analytics_step_cycles")
    op.drop_index("ix_analytics_step_cycles_requester_closed", table_name="analytics_step_cycles")
    op.drop_table("analytics_step_cycles")
    op.drop_index("ix_analytics_expense_weeks_week", table_name="analytics_expense_weeks")
    op.drop_table("analytics_expense_weeks")
    op.drop_index("ix_analytics_counterparty_totals_month", table_name="analytics_counterparty_totals")
    op.drop_table("analytics_counterparty_totals")
    op.drop_column("approval_steps", "opened_at")

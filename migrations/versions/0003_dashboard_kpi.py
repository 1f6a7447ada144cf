"""dashboard kpi: coarser entry totals, an approval decision histogram and escalation counts, kept current

Revision ID: 0003_dashboard_kpi
Revises: 0002_dashboard

- `dashboard_owner_totals` (per owner, status, month, kind) and `dashboard_category_totals` (per status, month,
  kind, category, organisation-wide) are kept by `domain.dashboard.aggregates.entry_status_changed`, like
  `dashboard_entry_totals`.
- `dashboard_approval_decisions` (per UTC month of the decision, status and cycle-time bucket) and
  `dashboard_escalations` (per requester and UTC month of the escalation) are kept by row triggers on
  `approval_requests` and `approval_steps`, so every writer keeps them current in its own transaction.
- `ix_approval_requests_cycle_bucket` finds the decided requests of one cycle-time bucket in a window: the exact
  median and 90th percentile are read from the histogram's bucket plus one short sorted range.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_dashboard_kpi"
down_revision: str | Sequence[str] | None = "0002_dashboard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AGGREGATED = "('pending', 'approved', 'rejected', 'withdrawn', 'expired')"

FUNCTIONS = [
    # The UTC calendar month of an instant (the dashboard's windows are whole UTC months).
    """
    CREATE FUNCTION dashboard_month(moment timestamptz) RETURNS date
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN date_trunc('month', moment AT TIME ZONE 'UTC')::date
    """,
    # A cycle time's bucket: non-decreasing in the cycle's epoch seconds (sqrt is exactly rounded, so the order of
    # buckets never contradicts the order of the values), ~2% of a year's decisions in the busiest bucket.
    """
    CREATE FUNCTION dashboard_cycle_bucket(cycle interval) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN floor(sqrt(greatest(date_part('epoch', cycle), 0)) / 8)::integer
    """,
    """
    CREATE FUNCTION dashboard_approval_decision_delta(p_month date, p_status text, p_bucket integer, p_delta integer)
    RETURNS void LANGUAGE sql AS $$
        INSERT INTO dashboard_approval_decisions AS t (month, status, bucket, requests)
        VALUES (p_month, p_status, p_bucket, p_delta)
        ON CONFLICT ON CONSTRAINT pk_dashboard_approval_decisions
        DO UPDATE SET requests = t.requests + excluded.requests
    $$
    """,
    # Decided requests (approved or rejected, with a decision time) counted per month, status and cycle bucket
    # (-1: no submission time). Two rows change in key order, so two transactions never lock them crosswise.
    """
    CREATE FUNCTION dashboard_approval_request_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        old_key text[];
        new_key text[];
    BEGIN
        IF TG_OP <> 'INSERT' AND OLD.status IN ('approved', 'rejected') AND OLD.decided_at IS NOT NULL THEN
            old_key := ARRAY[dashboard_month(OLD.decided_at)::text, OLD.status::text,
                             coalesce(dashboard_cycle_bucket(OLD.decided_at - OLD.submitted_at), -1)::text];
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.status IN ('approved', 'rejected') AND NEW.decided_at IS NOT NULL THEN
            new_key := ARRAY[dashboard_month(NEW.decided_at)::text, NEW.status::text,
                             coalesce(dashboard_cycle_bucket(NEW.decided_at - NEW.submitted_at), -1)::text];
        END IF;
        IF old_key IS NOT DISTINCT FROM new_key THEN
            RETURN NULL;
        END IF;
        IF old_key IS NOT NULL AND (new_key IS NULL OR old_key < new_key) THEN
            PERFORM dashboard_approval_decision_delta(old_key[1]::date, old_key[2], old_key[3]::integer, -1);
            old_key := NULL;
        END IF;
        IF new_key IS NOT NULL THEN
            PERFORM dashboard_approval_decision_delta(new_key[1]::date, new_key[2], new_key[3]::integer, 1);
        END IF;
        IF old_key IS NOT NULL THEN
            PERFORM dashboard_approval_decision_delta(old_key[1]::date, old_key[2], old_key[3]::integer, -1);
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION dashboard_escalation_delta(p_requester bigint, p_month date, p_delta integer)
    RETURNS void LANGUAGE sql AS $$
        INSERT INTO dashboard_escalations AS t (requester_id, month, escalations) VALUES (p_requester, p_month, p_delta)
        ON CONFLICT ON CONSTRAINT pk_dashboard_escalations
        DO UPDATE SET escalations = t.escalations + excluded.escalations
    $$
    """,
    # Escalated steps counted per requester (looked up from the request) and month of the escalation. When the
    # request itself is deleted, its BEFORE DELETE trigger subtracts its escalations and the cascaded step deletes
    # find no request and change nothing.
    """
    CREATE FUNCTION dashboard_approval_step_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        requester bigint;
        old_month date;
        new_month date;
    BEGIN
        IF TG_OP <> 'INSERT' AND OLD.status = 'escalated' AND OLD.decided_at IS NOT NULL THEN
            old_month := dashboard_month(OLD.decided_at);
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.status = 'escalated' AND NEW.decided_at IS NOT NULL THEN
            new_month := dashboard_month(NEW.decided_at);
        END IF;
        IF old_month IS NOT DISTINCT FROM new_month
           AND (TG_OP <> 'UPDATE' OR OLD.request_id = NEW.request_id) THEN
            RETURN NULL;
        END IF;
        IF old_month IS NOT NULL THEN
            SELECT r.requester_id INTO requester FROM approval_requests r WHERE r.id = OLD.request_id;
            IF requester IS NOT NULL THEN
                PERFORM dashboard_escalation_delta(requester, old_month, -1);
            END IF;
        END IF;
        IF new_month IS NOT NULL THEN
            SELECT r.requester_id INTO requester FROM approval_requests r WHERE r.id = NEW.request_id;
            IF requester IS NOT NULL THEN
                PERFORM dashboard_escalation_delta(requester, new_month, 1);
            END IF;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE FUNCTION dashboard_approval_request_deleting() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM dashboard_escalation_delta(OLD.requester_id, m.month, -m.n::integer)
        FROM (SELECT dashboard_month(s.decided_at) AS month, count(*) AS n FROM approval_steps s
              WHERE s.request_id = OLD.id AND s.status = 'escalated' AND s.decided_at IS NOT NULL
              GROUP BY 1 ORDER BY 1) m;
        RETURN OLD;
    END
    $$
    """,
]

TRIGGERS = [
    """
    CREATE TRIGGER dashboard_approval_request_changed
    AFTER INSERT OR DELETE OR UPDATE OF status, decided_at, submitted_at ON approval_requests
    FOR EACH ROW EXECUTE FUNCTION dashboard_approval_request_changed()
    """,
    """
    CREATE TRIGGER dashboard_approval_request_deleting
    BEFORE DELETE ON approval_requests FOR EACH ROW EXECUTE FUNCTION dashboard_approval_request_deleting()
    """,
    """
    CREATE TRIGGER dashboard_approval_step_changed
    AFTER INSERT OR DELETE OR UPDATE OF status, decided_at, request_id ON approval_steps
    FOR EACH ROW EXECUTE FUNCTION dashboard_approval_step_changed()
    """,
]

BACKFILL = [
    f"""
    INSERT INTO dashboard_owner_totals (owner_id, status, month, kind, entry_count, amount_total)
    SELECT owner_id, status, date_trunc('month', entry_date)::date, kind, count(*), sum(amount)
    FROM entries WHERE status IN {AGGREGATED} GROUP BY 1, 2, 3, 4
    """,
    f"""
    INSERT INTO dashboard_category_totals (status, month, kind, category, entry_count, amount_total)
    SELECT status, date_trunc('month', entry_date)::date, kind, category, count(*), sum(amount)
    FROM entries WHERE status IN {AGGREGATED} GROUP BY 1, 2, 3, 4
    """,
    """
    INSERT INTO dashboard_approval_decisions (month, status, bucket, requests)
    SELECT dashboard_month(decided_at), status, coalesce(dashboard_cycle_bucket(decided_at - submitted_at), -1),
           count(*)
    FROM approval_requests WHERE status IN ('approved', 'rejected') AND decided_at IS NOT NULL GROUP BY 1, 2, 3
    """,
    """
    INSERT INTO dashboard_escalations (requester_id, month, escalations)
    SELECT r.requester_id, dashboard_month(s.decided_at), count(*)
    FROM approval_steps s JOIN approval_requests r ON r.id = s.request_id
    WHERE s.status = 'escalated' AND s.decided_at IS NOT NULL GROUP BY 1, 2
    """,
]


def upgrade() -> None:
    op.create_table(
        "dashboard_owner_totals",
        sa.Column("owner_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=False),
        sa.Column("amount_total", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.PrimaryKeyConstraint("owner_id", "status", "month", "kind", name=op.f("pk_dashboard_owner_totals")),
    )
    op.create_index(
        "ix_dashboard_owner_totals_status_month",
        "dashboard_owner_totals",
        ["status", "month"],
        unique=False,
        postgresql_include=["kind", "owner_id", "entry_count", "amount_total"],
    )
    op.create_index(
        "ix_dashboard_owner_totals_owner_status_month",
        "dashboard_owner_totals",
        ["owner_id", "status", "month"],
        unique=False,
        postgresql_include=["kind", "entry_count", "amount_total"],
    )
    op.create_table(
        "dashboard_category_totals",
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("entry_count", sa.BigInteger(), nullable=False),
        sa.Column("amount_total", sa.Numeric(precision=20, scale=2), nullable=False),
        sa.PrimaryKeyConstraint("status", "month", "kind", "category", name=op.f("pk_dashboard_category_totals")),
    )
    op.create_table(
        "dashboard_approval_decisions",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("month", "status", "bucket", name=op.f("pk_dashboard_approval_decisions")),
    )
    op.create_table(
        "dashboard_escalations",
        sa.Column("requester_id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("escalations", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("requester_id", "month", name=op.f("pk_dashboard_escalations")),
    )
    for statement in FUNCTIONS:
        op.execute(statement)
    op.create_index(
        "ix_approval_requests_cycle_bucket",
        "approval_requests",
        [sa.text("dashboard_cycle_bucket(decided_at - submitted_at)"), "decided_at"],
        unique=False,
        postgresql_include=["submitted_at"],
        postgresql_where=sa.text("status IN ('approved', 'rejected') AND submitted_at IS NOT NULL"),
    )
    for statement in BACKFILL:
        op.execute(statement)
    for statement in TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER dashboard_approval_step_changed ON approval_steps")
    op.execute("DROP TRIGGER dashboard_approval_request_deleting ON approval_requests")
    op.execute("DROP TRIGGER dashboard_approval_request_changed ON approval_requests")
    op.drop_index("ix_approval_requests_cycle_bucket", table_name="approval_requests")
    op.execute("DROP FUNCTION dashboard_approval_request_deleting()")
    op.execute("DROP FUNCTION dashboard_approval_step_changed()")
    op.execute("DROP FUNCTION dashboard_escalation_delta(bigint, date, integer)")
    op.execute("DROP FUNCTION dashboard_approval_request_changed()")
    op.execute("DROP FUNCTION dashboard_approval_decision_delta(date, text, integer, integer)")
    op.execute("DROP FUNCTION dashboard_cycle_bucket(interval)")
    op.execute("DROP FUNCTION dashboard_month(timestamptz)")
    op.drop_table("dashboard_escalations")
    op.drop_table("dashboard_approval_decisions")
    op.drop_table("dashboard_category_totals")
    op.drop_index("ix_dashboard_owner_totals_owner_status_month", table_name="dashboard_owner_totals")
    op.drop_index("ix_dashboard_owner_totals_status_month", table_name="dashboard_owner_totals")
    op.drop_table("dashboard_owner_totals")

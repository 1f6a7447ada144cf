"""invoices: customers, invoices and their lines, gap-free numbering, payments, credit notes, reminders, recurring

- `customers`; `invoices` with `invoice_lines` (a late fee is a line, unique per invoice and reminder step); the
  invoices and the payments also by date (issue date, payment date: the receivables' sales and realized FX);
- `invoice_sequences`: the last number per series (`INV`, `CN`) and year, locked by the approval that takes the next;
- `invoice_payments` (each with its rate, the rate locked on the invoice, and the realized FX difference) and
  `credit_notes`;
- `invoice_reminders` (one per invoice and step) and `invoice_emails` (the customer emails, sent after commit);
- `recurring_invoices`: a template invoice issued by a Temporal Schedule.

Revision ID: 0013_invoices
Revises: 0012_budgets
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_invoices"
down_revision: str | Sequence[str] | None = "0012_budgets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(19, 4)
RATE = sa.Numeric(28, 12)
NOW = sa.text("now()")


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
    ]


def _created() -> sa.Column:
    return sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False)


def _touched(table: str) -> None:
    op.execute(f"CREATE TRIGGER {table}_touched BEFORE UPDATE ON {table} FOR EACH ROW EXECUTE FUNCTION touch_row()")


def upgrade() -> None:
    op.add_column("approval_requests", sa.Column("invoice_id", sa.BigInteger(), nullable=True))
    op.create_unique_constraint("uq_approval_requests_invoice_id", "approval_requests", ["invoice_id"])
    op.create_table(
        "customers",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("billing_email", sa.String(254), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("payment_terms_days", sa.Integer(), nullable=False),
        sa.Column("address", sa.Text(), server_default="", nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("created_by_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
        *_timestamps(),
        sa.CheckConstraint("payment_terms_days BETWEEN 0 AND 365", name="terms_bounded"),
    )
    op.create_index("ix_customers_lower_name", "customers", [sa.text("lower(name)")])
    _touched("customers")
    op.create_table(
        "invoices",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("customer_id", sa.BigInteger(), sa.ForeignKey("customers.id"), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("status", sa.String(20), server_default="draft", nullable=False),
        sa.Column("is_template", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        sa.Column("number", sa.String(20), nullable=True, unique=True),
        sa.Column("number_year", sa.Integer(), nullable=True),
        sa.Column("subtotal", MONEY, server_default=sa.text("0"), nullable=False),
        sa.Column("tax_total", MONEY, server_default=sa.text("0"), nullable=False),
        sa.Column("total", MONEY, server_default=sa.text("0"), nullable=False),
        sa.Column("amount_paid", MONEY, server_default=sa.text("0"), nullable=False),
        sa.Column("amount_credited", MONEY, server_default=sa.text("0"), nullable=False),
        sa.Column(
            "approval_request_id", sa.BigInteger(), sa.ForeignKey("approval_requests.id"), nullable=True, unique=True
        ),
        sa.Column("base_currency", sa.String(3), nullable=True),
        sa.Column("fx_rate", RATE, nullable=True),
        sa.Column("rate_date", sa.Date(), nullable=True),
        sa.Column("rate_source", sa.String(10), nullable=True),
        sa.Column("base_total", MONEY, nullable=True),
        sa.Column("pdf_key", sa.String(300), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("void_reason", sa.Text(), nullable=True),
        sa.Column("recurring_id", sa.BigInteger(), nullable=True),  # its foreign key below, once the table exists
        sa.Column("recurring_run_on", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('draft', 'pending_approval', 'approved', 'sent', 'partially_paid', 'paid', 'void')",
            name="status_known",
        ),
        sa.CheckConstraint("due_date >= issue_date", name="due_after_issue"),
        sa.CheckConstraint("total >= 0 AND amount_paid >= 0 AND amount_credited >= 0", name="amounts_not_negative"),
        sa.CheckConstraint("amount_paid + amount_credited <= total", name="not_overpaid"),
        sa.CheckConstraint("(number IS NULL) = (number_year IS NULL)", name="numbered_in_a_year"),
        sa.CheckConstraint("NOT is_template OR number IS NULL", name="templates_unnumbered"),
        sa.UniqueConstraint("recurring_id", "recurring_run_on"),
    )
    op.create_index("ix_invoices_status_due_date", "invoices", ["status", "due_date"])
    op.create_index("ix_invoices_customer_id_issue_date", "invoices", ["customer_id", "issue_date"])
    op.create_index("ix_invoices_owner_id_issue_date", "invoices", ["owner_id", "issue_date"])
    op.create_index("ix_invoices_issue_date", "invoices", ["issue_date"])
    _touched("invoices")
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("invoice_id", sa.BigInteger(), sa.ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(10), server_default="item", nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("quantity", MONEY, nullable=False),
        sa.Column("unit_price", MONEY, nullable=False),
        sa.Column("tax_rate", sa.Numeric(7, 4), nullable=False),
        sa.Column("net", MONEY, nullable=False),
        sa.Column("tax", MONEY, nullable=False),
        sa.Column("reminder_step", sa.Integer(), nullable=True),
        _created(),
        sa.CheckConstraint("kind IN ('item', 'late_fee')", name="kind_known"),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.CheckConstraint("unit_price >= 0", name="unit_price_not_negative"),
        sa.CheckConstraint("tax_rate >= 0 AND tax_rate <= 100", name="tax_rate_percent"),
        sa.CheckConstraint("(kind = 'late_fee') = (reminder_step IS NOT NULL)", name="fee_has_step"),
        sa.UniqueConstraint("invoice_id", "position"),
    )
    op.create_index(
        "ix_invoice_lines_one_fee_per_step",
        "invoice_lines",
        ["invoice_id", "reminder_step"],
        unique=True,
        postgresql_where=sa.text("kind = 'late_fee'"),
    )
    op.create_table(
        "invoice_sequences",
        sa.Column("series", sa.String(10), primary_key=True),
        sa.Column("year", sa.Integer(), primary_key=True),
        sa.Column("last", sa.Integer(), nullable=False),
    )
    op.create_table(
        "invoice_payments",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("invoice_id", sa.BigInteger(), sa.ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("reference", sa.String(200), server_default="", nullable=False),
        sa.Column("fx_rate", RATE, nullable=False),
        sa.Column("rate_source", sa.String(10), nullable=False),
        sa.Column("base_amount", MONEY, nullable=False),
        sa.Column("booked_base", MONEY, nullable=False),
        sa.Column("fx_difference", MONEY, nullable=False),
        sa.Column("entry_id", sa.BigInteger(), sa.ForeignKey("entries.id"), nullable=True),
        sa.Column("created_by_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
        _created(),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
    )
    op.create_index("ix_invoice_payments_invoice_id", "invoice_payments", ["invoice_id"])
    op.create_index("ix_invoice_payments_paid_on", "invoice_payments", ["paid_on"])
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("invoice_id", sa.BigInteger(), sa.ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("number", sa.String(20), nullable=False, unique=True),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
        _created(),
        sa.CheckConstraint("amount > 0", name="amount_positive"),
    )
    op.create_index("ix_credit_notes_invoice_id", "credit_notes", ["invoice_id"])
    op.create_table(
        "invoice_reminders",
        sa.Column(
            "invoice_id", sa.BigInteger(), sa.ForeignKey("invoices.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("step", sa.Integer(), primary_key=True),
        sa.Column("template", sa.String(100), nullable=False),
        sa.Column("fee_line_id", sa.BigInteger(), sa.ForeignKey("invoice_lines.id"), nullable=True),
        sa.Column("emailed_at", sa.DateTime(timezone=True), nullable=True),
        _created(),
    )
    op.create_table(
        "invoice_emails",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("invoice_id", sa.BigInteger(), sa.ForeignKey("invoices.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.String(100), nullable=False, unique=True),
        sa.Column("recipient", sa.String(254), nullable=False),
        sa.Column("message", postgresql.JSONB(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        _created(),
    )
    op.create_index("ix_invoice_emails_invoice_id", "invoice_emails", ["invoice_id"])
    op.create_index("ix_invoice_emails_unsent", "invoice_emails", ["id"], postgresql_where=sa.text("sent_at IS NULL"))
    op.create_table(
        "recurring_invoices",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("template_id", sa.BigInteger(), sa.ForeignKey("invoices.id"), nullable=False, unique=True),
        sa.Column("frequency", sa.String(10), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=True),
        sa.Column("runs", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("status", sa.String(20), server_default="draft", nullable=False),
        sa.Column("owner_id", sa.BigInteger(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        *_timestamps(),
        sa.CheckConstraint("frequency IN ('weekly', 'monthly', 'quarterly', 'yearly')", name="frequency_known"),
        sa.CheckConstraint(
            "status IN ('draft', 'pending_approval', 'active', 'ended', 'cancelled')", name="status_known"
        ),
        sa.CheckConstraint("count IS NULL OR count > 0", name="count_positive"),
    )
    _touched("recurring_invoices")
    op.create_foreign_key(
        "fk_invoices_recurring_id_recurring_invoices", "invoices", "recurring_invoices", ["recurring_id"], ["id"]
    )


def downgrade() -> None:
    op.drop_constraint("fk_invoices_recurring_id_recurring_invoices", "invoices", type_="foreignkey")
    for table in (
        "recurring_invoices",
        "invoice_emails",
        "invoice_reminders",
        "credit_notes",
        "invoice_payments",
        "invoice_sequences",
        "invoice_lines",
        "invoices",
        "customers",
    ):
        op.drop_table(table)
    op.drop_constraint("uq_approval_requests_invoice_id", "approval_requests", type_="unique")
    op.drop_column("approval_requests", "invoice_id")

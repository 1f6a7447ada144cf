"""closed invoices and credit note tax: a closed month refuses the invoice changes its journals book; credit notes
carry their amount's split into net and tax per tax rate

- the closed period's control (migration 0014, domain/ledger/periods.py) extended to what domain/ledger/journals.py
  books by date besides entries: triggers on `invoices`, `invoice_lines`, `invoice_payments`, `credit_notes` and
  `credit_note_taxes` refuse, whoever writes, to issue (number) an invoice dated in a closed month, to charge a late
  fee in one, to void an invoice in one, to change a numbered invoice's booked fields or lines while a month its
  journals are in is closed, to record, change or delete a payment dated in one, and to issue or change a credit
  note of a closed day (UTC), with SQLSTATE LC409, taking each month's advisory lock shared as the entries'
  triggers do. Drafts, templates and invoices never numbered are in no journal and stay free.
- `credit_note_taxes`: a credit note's amount per tax rate of its invoice, net and tax
  (domain/invoices/credit_notes.py splits it), which its journal books: Dr revenue (net), Dr tax, Cr receivable. A
  deferred constraint trigger checks at commit that the parts add up to the credit note's amount. Credit notes
  issued before this revision reversed no tax (their journals booked the whole amount to revenue, and a closed
  month froze them so): each keeps that, as one untaxed part of its whole amount.

Revision ID: 0015
Revises: 0014_closing_the_books
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0014_closing_the_books"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(19, 4)

# Every function below reads each month through period_closed(day) (migration 0014), which takes the month's
# advisory lock shared before it reads `periods`: a close (which takes the lock alone) waits for these writes under
# way and then counts what they committed, and a write after the close finds the month closed. The days are the
# ones domain/ledger/journals.py books by: an invoice's issue date, a payment's date paid, and the UTC day of what
# is timestamped (a late fee's line, a void, a credit note), exactly as domain/ledger/months.py bounds a month.
PERIOD_FUNCTIONS = [
    # The UTC day of a timestamped event (created_at, voided_at), whatever the session's TimeZone.
    """
    CREATE FUNCTION ledger_day(instant timestamptz) RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT (instant AT TIME ZONE 'UTC')::date
    $$
    """,
    # The refusal of 0014's period_refuse(text), with what was refused as its detail.
    """
    CREATE FUNCTION period_refuse(closed text, refused text) RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'the period % is closed', closed USING ERRCODE = 'LC409', DETAIL = refused,
            HINT = 'an admin may reopen the period (POST /api/v1/periods/' || closed || '/reopen)';
    END
    $$
    """,
    # The day an invoice line is booked in (journals.booked_lines): an item with the invoice, on its issue date; a
    # late fee on the day it was charged, or on the issue date when that is later.
    """
    CREATE FUNCTION invoice_line_day(kind text, charged timestamptz, issued date) RETURNS date
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT CASE WHEN kind = 'late_fee' THEN greatest(issued, ledger_day(charged)) ELSE issued END
    $$
    """,
    # The first closed month (YYYY-MM) among those the journals of a numbered invoice are in, from the day `since`
    # on (NULL: none): its issue month, its late fees' months, its void's, and the months of its payments and credit
    # notes (their journals carry its number, customer, owner and locked rate). Each month's lock, earliest first.
    """
    CREATE FUNCTION invoice_closed(p_invoice bigint, p_issued date, p_voided timestamptz, p_since date)
    RETURNS text LANGUAGE plpgsql AS $$
    DECLARE
        first_day date;
        closed text;
    BEGIN
        FOR first_day IN
            SELECT DISTINCT date_trunc('month', d.day)::date FROM (
                SELECT p_issued AS day
                UNION ALL SELECT ledger_day(p_voided) WHERE p_voided IS NOT NULL
                UNION ALL SELECT invoice_line_day(l.kind, l.created_at, p_issued) FROM invoice_lines l
                    WHERE l.invoice_id = p_invoice AND l.kind = 'late_fee'
                UNION ALL SELECT p.paid_on FROM invoice_payments p WHERE p.invoice_id = p_invoice
                UNION ALL SELECT ledger_day(n.created_at) FROM credit_notes n WHERE n.invoice_id = p_invoice
            ) d
            WHERE d.day >= date_trunc('month', p_since)::date
            ORDER BY 1
        LOOP
            closed := period_closed(first_day);
            IF closed IS NOT NULL THEN
                RETURN closed;
            END IF;
        END LOOP;
        RETURN NULL;
    END
    $$
    """,
    # An invoice is in the journals once numbered (issued; a template never is). Refused in a closed month: numbering
    # one dated in it; voiding one in it (and moving a void into or out of it, or before a late fee charged in it);
    # changing what its journals read (number, customer, owner, currency, locked rate, issue date, approval) or
    # deleting it while any month its journals are in is closed. Its settlement (status, amounts paid and credited,
    # sent, paid) and its totals (a late fee's line is refused or not on its own) are in no journal: they move freely.
    """
    CREATE FUNCTION invoice_period_open() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        closed text;
        refused text := 'a numbered invoice cannot be issued, changed or deleted while a month its journals are in '
                        'is closed';
    BEGIN
        IF TG_OP = 'INSERT' THEN
            IF NEW.number IS NOT NULL THEN
                closed := invoice_closed(NEW.id, NEW.issue_date, NEW.voided_at, '-infinity');
                refused := 'an invoice dated in a closed month cannot be issued';
            END IF;
        ELSIF TG_OP = 'DELETE' THEN
            IF OLD.number IS NOT NULL THEN
                closed := invoice_closed(OLD.id, OLD.issue_date, OLD.voided_at, '-infinity');
            END IF;
        ELSIF OLD.number IS NULL AND NEW.number IS NULL THEN
            RETURN NEW;  -- a draft, a template, an invoice never issued (rejected, voided as a draft)
        ELSIF (NEW.number, NEW.is_template, NEW.customer_id, NEW.owner_id, NEW.currency, NEW.fx_rate, NEW.issue_date,
               NEW.recurring_id, NEW.approved_at)
              IS DISTINCT FROM (OLD.number, OLD.is_template, OLD.customer_id, OLD.owner_id, OLD.currency, OLD.fx_rate,
                                OLD.issue_date, OLD.recurring_id, OLD.approved_at) THEN
            IF OLD.number IS NULL THEN
                refused := 'an invoice dated in a closed month cannot be issued';
            ELSE
                closed := invoice_closed(OLD.id, OLD.issue_date, OLD.voided_at, '-infinity');
            END IF;
            IF closed IS NULL AND NEW.number IS NOT NULL THEN
                closed := invoice_closed(NEW.id, NEW.issue_date, NEW.voided_at, '-infinity');
            END IF;
        ELSIF NEW.voided_at IS DISTINCT FROM OLD.voided_at THEN
            -- A void books in its own month and ends what later months would have booked: the months from the
            -- earlier of the two days on.
            closed := invoice_closed(NEW.id, NEW.issue_date, coalesce(NEW.voided_at, OLD.voided_at),
                                     least(ledger_day(NEW.voided_at), ledger_day(OLD.voided_at)));
            IF closed IS NULL AND OLD.voided_at IS NOT NULL AND NEW.voided_at IS NOT NULL THEN
                closed := period_closed(ledger_day(OLD.voided_at));
            END IF;
            refused := 'an invoice cannot be voided in a closed month';
        END IF;
        IF closed IS NULL THEN
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END IF;
        PERFORM period_refuse(closed, refused);
        RETURN NULL;
    END
    $$
    """,
    # A line of a numbered invoice, as its month books it (invoice_line_day), and as the month of the invoice's void
    # reverses it. The closed month of a line as it was or is (NULL: none, or the invoice is not numbered).
    """
    CREATE FUNCTION invoice_line_closed(p_invoice bigint, p_kind text, p_charged timestamptz) RETURNS text
    LANGUAGE plpgsql AS $$
    DECLARE
        invoice record;
        closed text;
    BEGIN
        SELECT i.number, i.issue_date, i.voided_at INTO invoice FROM invoices i WHERE i.id = p_invoice;
        IF invoice.number IS NULL THEN
            RETURN NULL;  -- a draft's or template's line, or one deleted with its invoice (whose own trigger ran)
        END IF;
        closed := period_closed(invoice_line_day(p_kind, p_charged, invoice.issue_date));
        IF closed IS NULL AND invoice.voided_at IS NOT NULL THEN
            closed := period_closed(ledger_day(invoice.voided_at));
        END IF;
        RETURN closed;
    END
    $$
    """,
    """
    CREATE FUNCTION invoice_line_period_open() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        closed text;
    BEGIN
        IF TG_OP = 'UPDATE' AND to_jsonb(NEW) = to_jsonb(OLD) THEN
            RETURN NEW;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            closed := invoice_line_closed(NEW.invoice_id, NEW.kind, NEW.created_at);
        END IF;
        IF closed IS NULL AND TG_OP <> 'INSERT' THEN
            closed := invoice_line_closed(OLD.invoice_id, OLD.kind, OLD.created_at);
        END IF;
        IF closed IS NULL THEN
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END IF;
        PERFORM period_refuse(closed, CASE WHEN TG_OP = 'INSERT' AND NEW.kind = 'late_fee'
            THEN 'a late fee cannot be charged in a closed month'
            ELSE 'the lines of an invoice issued (or voided) in a closed month cannot change' END);
        RETURN NULL;
    END
    $$
    """,
    # A payment, by the date paid (before or after the change). A write that changes nothing passes.
    """
    CREATE FUNCTION invoice_payment_period_open() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        closed text;
    BEGIN
        IF TG_OP = 'UPDATE' AND to_jsonb(NEW) = to_jsonb(OLD) THEN
            RETURN NEW;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            closed := period_closed(NEW.paid_on);
        END IF;
        IF closed IS NULL AND TG_OP <> 'INSERT' THEN
            closed := period_closed(OLD.paid_on);
        END IF;
        IF closed IS NULL THEN
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END IF;
        PERFORM period_refuse(closed, 'payments dated in a closed month cannot be recorded, changed or deleted');
        RETURN NULL;
    END
    $$
    """,
    # A credit note, by the UTC day it was issued (its created_at: the transaction's start, as the journal reads it).
    """
    CREATE FUNCTION credit_note_period_open() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        closed text;
    BEGIN
        IF TG_OP = 'UPDATE' AND to_jsonb(NEW) = to_jsonb(OLD) THEN
            RETURN NEW;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            closed := period_closed(ledger_day(NEW.created_at));
        END IF;
        IF closed IS NULL AND TG_OP <> 'INSERT' THEN
            closed := period_closed(ledger_day(OLD.created_at));
        END IF;
        IF closed IS NULL THEN
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END IF;
        PERFORM period_refuse(closed, 'credit notes cannot be issued, changed or deleted on a day of a closed month');
        RETURN NULL;
    END
    $$
    """,
    # A credit note's split, in its credit note's month.
    """
    CREATE FUNCTION credit_note_tax_period_open() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        closed text;
        issued timestamptz;
    BEGIN
        IF TG_OP = 'UPDATE' AND to_jsonb(NEW) = to_jsonb(OLD) THEN
            RETURN NEW;
        END IF;
        IF TG_OP <> 'DELETE' THEN
            SELECT n.created_at INTO issued FROM credit_notes n WHERE n.id = NEW.credit_note_id;
            IF issued IS NOT NULL THEN
                closed := period_closed(ledger_day(issued));
            END IF;
        END IF;
        IF closed IS NULL AND TG_OP <> 'INSERT' THEN
            issued := NULL;
            SELECT n.created_at INTO issued FROM credit_notes n WHERE n.id = OLD.credit_note_id;
            IF issued IS NOT NULL THEN  -- NULL: deleted with its credit note, whose own trigger ran
                closed := period_closed(ledger_day(issued));
            END IF;
        END IF;
        IF closed IS NULL THEN
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END IF;
        PERFORM period_refuse(closed, 'credit notes cannot be issued, changed or deleted on a day of a closed month');
        RETURN NULL;
    END
    $$
    """,
]
PERIOD_TRIGGERS = [
    "CREATE TRIGGER invoices_period_open BEFORE INSERT OR UPDATE OR DELETE ON invoices "
    "FOR EACH ROW EXECUTE FUNCTION invoice_period_open()",
    "CREATE TRIGGER invoice_lines_period_open BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines "
    "FOR EACH ROW EXECUTE FUNCTION invoice_line_period_open()",
    "CREATE TRIGGER invoice_payments_period_open BEFORE INSERT OR UPDATE OR DELETE ON invoice_payments "
    "FOR EACH ROW EXECUTE FUNCTION invoice_payment_period_open()",
    "CREATE TRIGGER credit_notes_period_open BEFORE INSERT OR UPDATE OR DELETE ON credit_notes "
    "FOR EACH ROW EXECUTE FUNCTION credit_note_period_open()",
    "CREATE TRIGGER credit_note_taxes_period_open BEFORE INSERT OR UPDATE OR DELETE ON credit_note_taxes "
    "FOR EACH ROW EXECUTE FUNCTION credit_note_tax_period_open()",
]

# At commit (deferred), every credit note written or whose split changed is split into parts that add up to its
# amount exactly: the journal books the parts and the receivable the amount, so a split that did not add up would
# leave the difference to the rounding account unseen.
SPLIT_WHOLE = [
    """
    CREATE FUNCTION credit_note_split_whole() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        note_id bigint;
        note_amount numeric;
        parts numeric;
    BEGIN
        IF TG_TABLE_NAME = 'credit_notes' THEN
            note_id := NEW.id;
        ELSIF TG_OP = 'DELETE' THEN
            note_id := OLD.credit_note_id;
        ELSE
            note_id := NEW.credit_note_id;
        END IF;
        SELECT n.amount INTO note_amount FROM credit_notes n WHERE n.id = note_id;
        IF note_amount IS NULL THEN
            RETURN NULL;  -- deleted, with its parts
        END IF;
        SELECT coalesce(sum(t.net + t.tax), 0) INTO parts FROM credit_note_taxes t WHERE t.credit_note_id = note_id;
        IF parts <> note_amount THEN
            RAISE EXCEPTION 'credit note % is split into parts of %, not its amount %', note_id, parts, note_amount
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END
    $$
    """,
    "CREATE CONSTRAINT TRIGGER credit_notes_split_whole AFTER INSERT OR UPDATE OF amount ON credit_notes "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION credit_note_split_whole()",
    "CREATE CONSTRAINT TRIGGER credit_note_taxes_split_whole AFTER INSERT OR UPDATE OR DELETE ON credit_note_taxes "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION credit_note_split_whole()",
]


def upgrade() -> None:
    op.create_table(
        "credit_note_taxes",
        sa.Column(
            "credit_note_id", sa.BigInteger(), sa.ForeignKey("credit_notes.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("tax_rate", sa.Numeric(7, 4), nullable=False),
        sa.Column("net", MONEY, nullable=False),
        sa.Column("tax", MONEY, nullable=False),
        sa.PrimaryKeyConstraint("credit_note_id", "tax_rate"),
        sa.CheckConstraint("net >= 0 AND tax >= 0 AND net + tax > 0", name="part_positive"),
        sa.CheckConstraint("tax_rate >= 0 AND tax_rate <= 100", name="tax_rate_percent"),
    )
    # Before the triggers: the credit notes of closed months get their one untaxed part too (what they booked).
    op.execute(
        "INSERT INTO credit_note_taxes (credit_note_id, tax_rate, net, tax) SELECT id, 0, amount, 0 FROM credit_notes"
    )
    for statement in PERIOD_FUNCTIONS + PERIOD_TRIGGERS + SPLIT_WHOLE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER credit_note_taxes_split_whole ON credit_note_taxes")
    op.execute("DROP TRIGGER credit_notes_split_whole ON credit_notes")
    op.execute("DROP FUNCTION credit_note_split_whole()")
    for table, trigger in (
        ("credit_note_taxes", "credit_note_taxes_period_open"),
        ("credit_notes", "credit_notes_period_open"),
        ("invoice_payments", "invoice_payments_period_open"),
        ("invoice_lines", "invoice_lines_period_open"),
        ("invoices", "invoices_period_open"),
    ):
        op.execute(f"DROP TRIGGER {trigger} ON {table}")
    for function in (
        "credit_note_tax_period_open()",
        "credit_note_period_open()",
        "invoice_payment_period_open()",
        "invoice_line_period_open()",
        "invoice_line_closed(bigint, text, timestamptz)",
        "invoice_period_open()",
        "invoice_closed(bigint, date, timestamptz, date)",
        "invoice_line_day(text, timestamptz, date)",
        "period_refuse(text, text)",
        "ledger_day(timestamptz)",
    ):
        op.execute(f"DROP FUNCTION {function}")
    op.drop_table("credit_note_taxes")

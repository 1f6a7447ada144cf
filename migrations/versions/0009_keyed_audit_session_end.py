"""the audit chain keyed (HMAC-SHA-256 under AUDIT_HMAC_KEY), and a user's session changes announced to live streams

- `audit_chain_claim(lock_key)`: takes the chain's lock, then draws the next row's id and reads the chain's head,
  in one round trip. The writer computes the row's HMAC itself (domain/audit/service.py), so the key never reaches
  the database; it needs the head read after the lock is granted, which a statement inside a plpgsql function is
  (at READ COMMITTED each one takes its own snapshot).
- The rows written before keep their plain SHA-256. When there are any, this migration seals them with a keyed row
  (`audit.chain_keyed`, computed here, so it needs AUDIT_HMAC_KEY like the API and the worker): verification then
  accepts plain rows only before the first keyed row, and a chain whose plain rows are not followed by a keyed one
  fails, so whoever lacks the key cannot pass off a rewritten tail as rows from before the switch.
- `user_session_changed`: a trigger that announces a user's id on the `user_sessions` channel when their token
  version, active flag or role changes, or the row goes, whoever changed it (logout, password change, deactivation,
  demotion, an operator's SQL). The API's notification feed listens there and ends that user's live streams.

Revision ID: 0009_keyed_audit_session_end
Revises: 0008_approval_controls
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_keyed_audit_session_end"
down_revision: str | Sequence[str] | None = "0008_approval_controls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


AUDIT_CHAIN_CLAIM = """
CREATE FUNCTION audit_chain_claim(lock_key bigint, OUT isolation text, OUT row_id bigint, OUT head text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(lock_key);
    isolation := current_setting('transaction_isolation');
    row_id := nextval(pg_get_serial_sequence('audit_log', 'id'));
    -- A statement of its own, after the lock: its snapshot sees the row committed just before ours.
    SELECT hash INTO head FROM audit_log ORDER BY id DESC LIMIT 1;
    head := coalesce(head, repeat('0', 64));
END
$$;
"""


USER_SESSION_CHANGED = """
CREATE FUNCTION user_session_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('user_sessions', OLD.id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER user_session_changed AFTER UPDATE OF token_version, is_active, role ON users
    FOR EACH ROW
    WHEN (OLD.token_version IS DISTINCT FROM NEW.token_version OR OLD.is_active IS DISTINCT FROM NEW.is_active
          OR OLD.role IS DISTINCT FROM NEW.role)
    EXECUTE FUNCTION user_session_changed();
CREATE TRIGGER user_session_ended AFTER DELETE ON users FOR EACH ROW EXECUTE FUNCTION user_session_changed();
"""


def _seal_legacy_rows() -> None:
    bind = op.get_bind()
    legacy_rows, legacy_head_id = bind.execute(sa.text("SELECT count(*), max(id) FROM audit_log")).one()
    if not legacy_rows:
        return  # a new database: every row will be keyed
    # The application's own code writes the seal, so it is hashed exactly as the verifier checks it.
    from core.settings import audit_key
    from domain.audit.service import CHAIN_LOCK_KEY, SYSTEM, chained_row
    from domain.models import AuditLog

    claim = sa.text("SELECT isolation, row_id, head FROM audit_chain_claim(:lock_key)")
    isolation, row_id, head = bind.execute(claim, {"lock_key": CHAIN_LOCK_KEY}).one()
    if isolation != "read committed":
        raise RuntimeError(f"migration 0009 must run at READ COMMITTED, not {isolation}")
    changes = {"legacy_rows": legacy_rows, "legacy_head_id": legacy_head_id, "legacy_head": head}
    seal = chained_row(row_id, head, SYSTEM, "audit.chain_keyed", "audit_log", legacy_head_id, changes, audit_key())
    table = AuditLog.__table__
    bind.execute(sa.insert(table).values({column.key: getattr(seal, column.key) for column in table.columns}))


def upgrade() -> None:
    op.execute(AUDIT_CHAIN_CLAIM)
    _seal_legacy_rows()
    op.execute(USER_SESSION_CHANGED)


def downgrade() -> None:
    if op.get_bind().execute(sa.text("SELECT EXISTS (SELECT 1 FROM audit_log)")).scalar():
        raise RuntimeError(
            "audit_log holds rows keyed with AUDIT_HMAC_KEY, which the code before 0009 would call a broken chain; "
            "restore a backup taken before the upgrade instead"
        )
    op.execute("DROP TRIGGER user_session_ended ON users")
    op.execute("DROP TRIGGER user_session_changed ON users")
    op.execute("DROP FUNCTION user_session_changed()")
    op.execute("DROP FUNCTION audit_chain_claim(bigint)")

"""Request dependencies: the transaction, the caller, and the permission each route declares."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry

from api import idempotency
from core.authz import Authorizer
from core.db import Database, ReadDatabase, Tx
from core.engine import WorkflowEngine
from core.logging import request_id_var
from core.mail import MailTransport
from core.security import InvalidToken, decode_token
from core.settings import Settings
from core.storage import ObjectStorage
from domain.approvals.commands import ApprovalCommands
from domain.audit.service import AuditContext
from domain.errors import Forbidden, Unauthorized
from domain.invoices.commands import InvoiceCommands
from domain.invoices.credit_notes import CreditNoteCommands
from domain.invoices.payments import PaymentCommands
from domain.metrics.gauges import DatabaseGauges, PolicyVersion, registry_of
from domain.models import User
from domain.users.caller import load_user

F = TypeVar("F", bound=Callable[..., Any])

# A row's id in a path: 1 or more, and no more than its column holds (BIGINT; INTEGER for the few tables declared
# with it, report schedules and backups), so a larger number is a 422 saying so, not a database error.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
SmallRowId = Annotated[int, Path(ge=1, le=2**31 - 1)]
_READ_ONLY = "__read_only_route__"
_KEY_ONLY = "__writes_only_its_idempotency_key__"
_RATE_LIMITED = "__rate_limited_route__"


@dataclass
class AppServices:
    """Everything a request may need, built once in the app's lifespan."""

    settings: Settings
    db: Database
    authorizer: Authorizer
    engine: WorkflowEngine
    storage: ObjectStorage
    mail: MailTransport
    # The read replica (DATABASE_READ_URL) for the dashboard's and analytics' figures; None: the primary.
    read_database: ReadDatabase | None = None

    @cached_property
    def reads(self) -> ReadDatabase:
        return self.read_database or ReadDatabase(self.db)

    @cached_property
    def database_gauges(self) -> DatabaseGauges:
        return DatabaseGauges(self.db)

    @cached_property
    def metrics(self) -> CollectorRegistry:
        """What GET /metrics serves: the process's metrics, the database gauges, the policy version."""
        return registry_of(self.database_gauges, PolicyVersion(self.authorizer))

    @property
    def approvals(self) -> ApprovalCommands:
        return ApprovalCommands(self.settings, self.authorizer, self.engine)

    @property
    def invoices(self) -> InvoiceCommands:
        return InvoiceCommands(self.approvals)

    @property
    def invoice_payments(self) -> PaymentCommands:
        return PaymentCommands(self.invoices)

    @property
    def credit_notes(self) -> CreditNoteCommands:
        return CreditNoteCommands(self.invoices)


def services(request: Request) -> AppServices:
    return request.app.state.services  # type: ignore[no-any-return]


async def _services(request: Request) -> AppServices:
    # async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off per request.
    return services(request)


ServicesDep = Annotated[AppServices, Depends(_services)]


def read_only(endpoint: F) -> F:
    """Mark a route that only reads: its statements run in autocommit, each on its own snapshot, without the BEGIN
    and COMMIT round trips a transaction costs. Never for a route that writes anything: an audit row needs its
    transaction (the chain's lock is held to its end)."""
    setattr(endpoint, _READ_ONLY, True)
    return endpoint


def is_read_only(endpoint: object) -> bool:
    return getattr(endpoint, _READ_ONLY, False) is True


def rate_limited(endpoint: F) -> F:
    """Mark a route that counts attempts against a rate limit (domain/auth/rate_limits.py): it may answer 429 with
    Retry-After, which the OpenAPI document then declares (api/contract.py)."""
    setattr(endpoint, _RATE_LIMITED, True)
    return endpoint


def is_rate_limited(endpoint: object) -> bool:
    return getattr(endpoint, _RATE_LIMITED, False) is True


def writes_only_its_idempotency_key(endpoint: F) -> F:
    """Mark a route whose only write is its Idempotency-Key claim: a decision or an owner's action, which the
    workflow's activity records. Called without a key it writes nothing, and its reads run in autocommit as a
    `read_only` route's do (no BEGIN and COMMIT round trips); with a key, in a transaction."""
    setattr(endpoint, _KEY_ONLY, True)
    return endpoint


def _autocommit(request: Request) -> bool:
    endpoint = request.scope.get("endpoint")
    if is_read_only(endpoint):
        return True
    return getattr(endpoint, _KEY_ONLY, False) is True and idempotency.HEADER not in request.headers


async def _transaction(request: Request) -> AsyncIterator[Tx]:
    """The request owns the transaction: committed when the handler returns, before the response goes out. A
    `read_only` route's has none, nor has a keyless call of one that `writes_only_its_idempotency_key`: each of
    their statements commits on its own."""
    async with services(request).db.transaction(autocommit=_autocommit(request)) as tx:
        yield tx


TxDep = Annotated[Tx, Depends(_transaction, scope="function")]


async def _read_transaction(request: Request, tx: TxDep) -> AsyncIterator[Tx]:
    """For figures that tolerate a replica's lag (the dashboard, analytics): a READ ONLY transaction on the read
    replica, or, without one (or while it is unreachable), the request's own transaction. The caller's session is
    still checked on the primary (`CurrentUser` uses TxDep), so a logout or demotion is never read late."""
    async with services(request).reads.transaction(on_primary=tx) as read:
        yield read


ReadTxDep = Annotated[Tx, Depends(_read_transaction, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An access token from POST /api/v1/auth/login")


async def _current_user(
    request: Request,
    tx: TxDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing bearer token")
    settings = services(request).settings
    try:
        claims = decode_token(settings.auth, credentials.credentials, "access")
    except InvalidToken as exc:
        raise Unauthorized("invalid or expired token") from exc
    # The role, active flag and token version come from the database on every request, so demotion,
    # deactivation and logout take effect on the very next call.
    user = await load_user(tx, claims.user_id)
    if user is None or not user.is_active or user.token_version != claims.token_version:
        raise Unauthorized("invalid or expired token")
    request.state.user = user
    request.state.token_claims = claims
    return user


CurrentUser = Annotated[User, Depends(_current_user)]


@dataclass(frozen=True)
class Grant:
    """A caller allowed to do something, and the policy rule that allowed it (for the audit row)."""

    user: User
    rule: str | None
    audit: AuditContext


def audit_context(request: Request, actor_id: int | None, rule: str | None = None) -> AuditContext:
    client = request.client.host if request.client else None
    return AuditContext(
        actor_id=actor_id,
        request_id=request_id_var.get(),
        client_ip=client,
        user_agent=request.headers.get("user-agent"),
        policy_rule=rule,
    )


class Authorize:
    """A route's permission: `Depends(Authorize("entry", "create"))`. Routes without one are refused at start-up."""

    def __init__(self, resource: str, action: str) -> None:
        self.resource = resource
        self.action = action

    async def __call__(self, request: Request, user: CurrentUser) -> Grant:
        decision = services(request).authorizer.enforce(user.role, self.resource, self.action)
        if not decision.allowed:
            raise Forbidden(f"your role may not {self.action} {self.resource}")
        return Grant(user=user, rule=decision.rule, audit=audit_context(request, user.id, decision.rule))

    def __repr__(self) -> str:
        return f"Authorize({self.resource!r}, {self.action!r})"


class Public:
    """Marks a route as open to anonymous callers (login, registration, health)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def __call__(self, request: Request) -> AuditContext:
        return audit_context(request, None)


def declared_permission(route_dependencies: list[object]) -> Authorize | Public | None:
    for dependency in route_dependencies:
        if isinstance(dependency, Authorize | Public):
            return dependency
    return None

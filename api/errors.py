"""One table from domain errors to HTTP statuses, and one JSON error shape for every failure.

{"error": {"code": "not_found", "message": "...", "details": {...}}, "request_id": "..."}
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.engine import EngineUnavailable, ScheduleRefused
from core.logging import request_id_var
from domain import errors
from domain.ledger.periods import closed_period

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[errors.DomainError], int] = {
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.InvalidState: 409,
    errors.Conflict: 409,
    errors.PreconditionFailed: 412,
    errors.ValidationFailed: 422,
    errors.PreconditionRequired: 428,
    errors.TooLarge: 413,
    errors.RateLimited: 429,
    errors.ServiceUnavailable: 503,
}

# The error body's `code` for each status: the answers and the OpenAPI examples (api/contract.py) read it here.
CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    428: "precondition_required",
    429: "rate_limited",
    503: "service_unavailable",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="stable and machine-readable: `validation_failed`, `invalid_state`, ...")
    message: str = Field(description="for people: what was wrong, and what to do")
    details: dict[str, Any] | list[Any] | None = Field(
        description="more about it where there is more: the invalid fields of a 422, the current version of a 412"
    )


class ErrorBody(BaseModel):
    """The body of every error response (the OpenAPI document refers every 4xx and 5xx to it: api/contract.py)."""

    error: ErrorDetail
    request_id: str | None = Field(description="this request's id (the X-Request-ID header), for the logs")


def error_response(status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None):
    # Through the model the OpenAPI document declares, so what is sent is what is documented.
    body = ErrorBody(error=ErrorDetail(code=code, message=message, details=details), request_id=request_id_var.get())
    return JSONResponse(status_code=status, content=body.model_dump(mode="json"), headers=headers)


_LOGGED_FLAG = "_finance_ops_logged"


def log_unhandled(exc: BaseException) -> None:
    """Log an unexpected exception once, with its trace (never sent to the client).

    RequestContextMiddleware calls this while the request id is still set, so the line carries it; the fallback
    handler below (outside that middleware) then knows not to log the same exception a second time.
    """
    if getattr(exc, _LOGGED_FLAG, False):
        return
    log.error("unhandled error", exc_info=exc)
    try:
        setattr(exc, _LOGGED_FLAG, True)
    except AttributeError:  # an exception type with __slots__: logging twice is the lesser harm
        pass


def internal_error_response() -> JSONResponse:
    return error_response(500, "internal_error", "internal server error")


def status_for(error: errors.DomainError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]  # type: ignore[index]
    return 400


def _clean_validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    cleaned = []
    for item in exc.errors():
        message = str(item.get("msg", "invalid"))
        cleaned.append({"loc": list(item.get("loc", [])), "message": message, "type": item.get("type")})
    return cleaned


# Every 503 says when to try again (nothing was changed): the engine or the mail server away, a transaction aborted.
RETRY_UNAVAILABLE_SECONDS = 1


def _domain_response(exc: errors.DomainError) -> JSONResponse:
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, errors.RateLimited) else None
    status = status_for(exc)
    if status == 503:
        headers = {"Retry-After": str(RETRY_UNAVAILABLE_SECONDS)}
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return error_response(status, exc.code, exc.message, exc.details or None, headers)


_TRY_AGAIN = {"40P01", "40001"}  # deadlock_detected, serialization_failure
# The server ended the session: admin_shutdown (pg_terminate_backend), crash_shutdown, cannot_connect_now.
_SESSION_ENDED = {"57P01", "57P02", "57P03"}


def _sqlstate(exc: Exception) -> str | None:
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    return cause.sqlstate if isinstance(cause, psycopg.Error) else None


def _connection_lost(exc: Exception) -> bool:
    """The database could not be reached, or cut this request's connection (a restart, a failover, an operator's
    pg_terminate_backend): not the request's fault, and a retry gets a fresh connection (core/db.py renews the
    pool). A statement the server refused (a constraint, a timeout) carries its own SQLSTATE and is not this."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    cause = exc.orig if isinstance(exc, DBAPIError) else exc
    if not isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    state = cause.sqlstate
    return state is None or state.startswith("08") or state in _SESSION_ENDED  # 08: connection_exception


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.DomainError)
    async def _domain(_: Request, exc: errors.DomainError) -> JSONResponse:
        return _domain_response(exc)

    @app.exception_handler(psycopg.Error)
    @app.exception_handler(DBAPIError)
    async def _refused_by_database(_: Request, exc: Exception) -> JSONResponse:
        # The database's own controls: a change to what a closed period's journals are made of (entries, invoices,
        # late fees, voids, payments, credit notes: the triggers of migrations 0014 and 0015) is the 409 it would
        # have been had the service checked first. Anything else is what it was: unexpected.
        refusal = closed_period(exc)
        if refusal is not None:
            return _domain_response(refusal)
        if _sqlstate(exc) in _TRY_AGAIN:
            # A deadlock or serialisation failure: the database aborted this request's transaction (rolled back,
            # nothing kept) so that another could go on, e.g. a close of a month and a write of it taking their locks
            # in opposite orders. Safe to repeat as it was.
            message = (
                "the database aborted this request to resolve a conflict with another; nothing was changed, try again"
            )
            retry = {"Retry-After": str(RETRY_UNAVAILABLE_SECONDS)}
            return error_response(503, errors.ServiceUnavailable.code, message, headers=retry)
        if _connection_lost(exc):
            # This request's transaction is gone with its connection (nothing it wrote was kept); an action it had
            # already handed to the workflow engine stands, and a repeat meets it (a replay or a 409), never twice.
            log.warning(
                "database connection lost during a request: %s",
                (str(exc).strip().splitlines() or [type(exc).__name__])[0],
            )
            message = "the connection to the database was lost; what this request wrote was not kept, try again"
            retry = {"Retry-After": str(RETRY_UNAVAILABLE_SECONDS)}
            return error_response(503, errors.ServiceUnavailable.code, message, headers=retry)
        raise exc

    @app.exception_handler(EngineUnavailable)
    async def _engine_away(_: Request, exc: EngineUnavailable) -> JSONResponse:
        # Raised before anything was recorded or sent: the action changed nothing and may simply be tried again.
        message = "the workflow engine is unreachable; nothing was changed, try again shortly"
        retry = {"Retry-After": str(RETRY_UNAVAILABLE_SECONDS)}
        return error_response(503, errors.ServiceUnavailable.code, message, headers=retry)

    @app.exception_handler(ScheduleRefused)
    async def _schedule_refused(_: Request, exc: ScheduleRefused) -> JSONResponse:
        # A cron expression or time zone the engine does not accept: the client's input, and nothing was kept.
        return error_response(422, errors.ValidationFailed.code, f"the workflow engine refused the schedule: {exc}")

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _clean_validation_errors(exc)
        first: dict[str, Any] = details[0] if details else {"loc": [], "message": "invalid request"}
        where = ".".join(str(part) for part in first["loc"] if part != "body")
        message = f"{where}: {first['message']}" if where else str(first["message"])
        return error_response(422, "validation_failed", message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = CODE_BY_STATUS.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), None, getattr(exc, "headers", None))

    @app.exception_handler(DataError)
    async def _unstorable(_: Request, exc: DataError) -> JSONResponse:
        return _unstorable_response(exc.orig)

    @app.exception_handler(psycopg.DataError)
    async def _unstorable_in_sql(_: Request, exc: psycopg.DataError) -> JSONResponse:
        return _unstorable_response(exc)  # the same refusal, from a statement run on the plain connection

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # A fallback only: RequestContextMiddleware answers unhandled errors itself, with the request id. This runs
        # for an error raised outside it (Starlette calls it from the outermost middleware).
        log_unhandled(exc)
        return internal_error_response()


def _unstorable_response(error: BaseException | None) -> JSONResponse:
    # The database refused a value the request carried (an id beyond 64 bits, a NUL character in text, a number out
    # of range). The transaction was rolled back, so nothing was stored: the client's input is at fault, and this one
    # rule answers for every route and field.
    diag = getattr(error, "diag", None)
    reason = str((diag and diag.message_primary) or error).split("\n")[0]
    return error_response(422, "validation_failed", f"a value in the request cannot be stored: {reason}")

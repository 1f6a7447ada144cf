"""Domain errors. The HTTP layer maps them to status codes in one table (`api/errors.py`)."""

from __future__ import annotations


class DomainError(Exception):
    """Base class; `code` is a stable machine-readable name for clients."""

    code = "error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    code = "forbidden"


class Unauthorized(DomainError):
    code = "unauthorized"


class Conflict(DomainError):
    code = "conflict"


class InvalidState(Conflict):
    code = "invalid_state"


class PreconditionFailed(DomainError):
    code = "precondition_failed"


class PreconditionRequired(DomainError):
    code = "precondition_required"


class ValidationFailed(DomainError):
    code = "validation_failed"


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    code = "service_unavailable"

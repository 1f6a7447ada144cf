"""Domain errors. The HTTP layer maps them to status codes in one table (`api/errors.py`)."""

from __future__ import annotations


class DomainError(Exception):
    """Base class; `code` is a stable machine-readable name for clients. `refusal` is the type a workflow's refusal
    carries across Temporal (workflows.contracts.REFUSALS): the activity raises it, the caller reads it back."""

    code = "error"
    refusal = "Conflict"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "not_found"
    refusal = "NotFound"


class Forbidden(DomainError):
    code = "forbidden"
    refusal = "Forbidden"


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
    refusal = "ValidationFailed"


class TooLarge(DomainError):
    """A body or file beyond its limit (nothing of it was kept)."""

    code = "payload_too_large"


class RateLimited(DomainError):
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


class ServiceUnavailable(DomainError):
    code = "service_unavailable"


_REFUSED_AS: dict[str, type[DomainError]] = {
    "Conflict": InvalidState,
    "Forbidden": Forbidden,
    "NotFound": NotFound,
    "ValidationFailed": ValidationFailed,
}


def refusal_error(refusal: str, message: str) -> DomainError:
    """The domain error a workflow's refusal of this type stands for (an unknown type is a conflict)."""
    return _REFUSED_AS.get(refusal, InvalidState)(message)

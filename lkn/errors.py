"""One exception tree for the whole gateway.

Every error the core raises is an :class:`LknError`; each class knows how it is shown
on each front-end, so REST and gRPC translate it in exactly one place each::

    LknError                         500  INTERNAL            server_error
    ├── BadRequest                   400  INVALID_ARGUMENT    invalid_request_error
    │   ├── BodyTooLarge             413  INVALID_ARGUMENT    invalid_request_error
    │   └── MethodNotAllowed         405  INVALID_ARGUMENT    invalid_request_error
    ├── Unauthorized                 401  UNAUTHENTICATED     authentication_error
    ├── Forbidden                    403  PERMISSION_DENIED   permission_error
    ├── NotFound                     404  NOT_FOUND           invalid_request_error
    │   └── ModelNotFound            404  NOT_FOUND           invalid_request_error (model_not_found)
    ├── TooManyRequests              429  RESOURCE_EXHAUSTED  rate_limit_error
    ├── ClientClosed                 499  CANCELLED           client_closed
    ├── DeadlineExceeded             504  DEADLINE_EXCEEDED   timeout (the client's deadline)
    ├── ShuttingDown                 503  UNAVAILABLE         unavailable (stream cut at shutdown)
    └── EngineError                  502  UNAVAILABLE         engine_error
        ├── EngineRejected (4xx from the engine: the request was wrong, not the engine)
        ├── EngineUnavailable        503  UNAVAILABLE         engine_unavailable
        │   └── NoEngineAvailable    503  (every breaker open / nothing ready)
        │   └── EngineOverloaded     503  (capacity, not failure: 503/529 from the engine)
        │       └── EngineRateLimited 429 RESOURCE_EXHAUSTED  rate_limit_error
        └── EngineTimeout            504  DEADLINE_EXCEEDED   timeout

How each error counts (breaker, metrics, log) is decided once, in :mod:`lkn.outcome`.
"""

from __future__ import annotations

from typing import ClassVar


class LknError(Exception):
    """Base of every error the gateway reports to a client."""

    http_status: ClassVar[int] = 500
    grpc_code: ClassVar[str] = "INTERNAL"
    openai_type: ClassVar[str] = "server_error"
    #: Whether the failure says something about the engine's health (breaker input).
    counts_against_engine: ClassVar[bool] = False
    #: Whether another engine could serve the same request.
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after

    def status(self) -> int:
        return self.http_status

    def to_openai(self) -> dict[str, object]:
        """The OpenAI error object (the value under the top-level ``error`` key)."""
        return {
            "message": self.message,
            "type": self.openai_type,
            "param": self.param,
            "code": self.code if self.code is not None else self.status(),
        }


class BadRequest(LknError):
    http_status = 400
    grpc_code = "INVALID_ARGUMENT"
    openai_type = "invalid_request_error"


class BodyTooLarge(BadRequest):
    http_status = 413


class MethodNotAllowed(BadRequest):
    http_status = 405


class Unauthorized(LknError):
    http_status = 401
    grpc_code = "UNAUTHENTICATED"
    openai_type = "authentication_error"


class Forbidden(LknError):
    """A valid request the gateway does not allow this client (care it may not ask for)."""

    http_status = 403
    grpc_code = "PERMISSION_DENIED"
    openai_type = "permission_error"


class NotFound(LknError):
    http_status = 404
    grpc_code = "NOT_FOUND"
    openai_type = "invalid_request_error"


class ModelNotFound(NotFound):
    """No engine of the pool serves the requested model (code ``model_not_found``)."""


class TooManyRequests(LknError):
    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"
    openai_type = "rate_limit_error"


class ClientClosed(LknError):
    """The client went away; nothing is sent back, and the engine is not blamed."""

    http_status = 499
    grpc_code = "CANCELLED"
    openai_type = "client_closed"


class EngineError(LknError):
    """The engine failed (bad gateway): connection reset, 5xx, broken stream."""

    http_status = 502
    grpc_code = "UNAVAILABLE"
    openai_type = "engine_error"
    counts_against_engine = True
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        engine: str | None = None,
        upstream_status: int | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, param=param, retry_after=retry_after)
        self.engine = engine
        self.upstream_status = upstream_status


class EngineRejected(EngineError):
    """The engine refused the request itself (4xx): the client's fault, never retried.

    Keeps the engine's status (400, 404, 413, 422 ...), so the client sees what SGLang said.
    """

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"
    openai_type = "invalid_request_error"
    counts_against_engine = False
    retryable = False

    def status(self) -> int:
        if self.upstream_status is not None and 400 <= self.upstream_status < 500:
            return self.upstream_status
        return self.http_status


class EngineUnavailable(EngineError):
    http_status = 503
    openai_type = "engine_unavailable"


class NoEngineAvailable(EngineUnavailable):
    """Every engine's breaker is open or no engine is ready."""

    counts_against_engine = False
    retryable = False


class ShuttingDown(LknError):
    """The gateway is stopping and its grace period for this stream is over."""

    http_status = 503
    grpc_code = "UNAVAILABLE"
    openai_type = "unavailable"


class EngineOverloaded(EngineUnavailable):
    """The engine is at capacity (SGLang's queue is full, 503 or 529): try another engine or
    later. Capacity, not failure: the breaker does not count it."""

    counts_against_engine = False


class EngineRateLimited(EngineOverloaded):
    """The engine answered 429."""

    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"
    openai_type = "rate_limit_error"


class EngineTimeout(EngineError):
    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"
    openai_type = "timeout"


class DeadlineExceeded(LknError):
    """The client's own deadline expired; the engine is not blamed."""

    http_status = 504
    grpc_code = "DEADLINE_EXCEEDED"
    openai_type = "timeout"


_COUNTED = "_lkn_counted"


def mark_counted(exc: BaseException) -> None:
    """The request that raised ``exc`` has been counted and logged (with its traceback if it
    was a bug): front-ends must not count or log it again."""
    try:
        setattr(exc, _COUNTED, True)
    except AttributeError:  # an exception type with __slots__
        pass


def is_counted(exc: BaseException) -> bool:
    return getattr(exc, _COUNTED, False) is True

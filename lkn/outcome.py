"""The one table that classifies how a request ended.

Every request (REST or gRPC, streamed, non-streamed or a probe) ends here exactly once, in
:meth:`lkn.exchange.Exchange`'s exit; so do rejections before it started (bad body, bad key,
too large, over the concurrency limit). The table decides what is counted, logged and told
to the breaker:

=================  ==========================================  ======  =======  ==========
kind               raised as                                   status  breaker  log
=================  ==========================================  ======  =======  ==========
success            (nothing)                                   200     success  info
client_gone        cancellation, a write to a closed client,   499     neutral  info
                   a front-end that stopped reading,
                   ``ClientClosed``
deadline           ``DeadlineExceeded``; anything once the     504     neutral  info
                   request's own deadline has passed
overload           ``EngineOverloaded`` (engine 429/503/529),  429/503 neutral  warning
                   ``TooManyRequests``, ``NoEngineAvailable``,
                   ``ShuttingDown``
engine_failure     any other ``EngineError``                   5xx     failure  warning
client_error       ``BadRequest``, ``Unauthorized``,           4xx     neutral  info
                   ``Forbidden``,
                   ``NotFound``, ``EngineRejected``
bug                any other exception                         500     neutral  error + traceback
=================  ==========================================  ======  =======  ==========
"""

from __future__ import annotations

import asyncio
import enum
import logging
from dataclasses import dataclass

from lkn.breaker import Verdict
from lkn.errors import (
    ClientClosed,
    DeadlineExceeded,
    EngineError,
    EngineOverloaded,
    LknError,
    NoEngineAvailable,
    ShuttingDown,
    TooManyRequests,
)


class Kind(enum.Enum):
    SUCCESS = "success"
    CLIENT_GONE = "client_gone"
    DEADLINE = "deadline"
    OVERLOAD = "overload"
    ENGINE_FAILURE = "engine_failure"
    CLIENT_ERROR = "client_error"
    BUG = "bug"


#: kind -> (what the breaker hears, log level)
_EFFECTS: dict[Kind, tuple[Verdict, int]] = {
    Kind.SUCCESS: (Verdict.SUCCESS, logging.INFO),
    Kind.CLIENT_GONE: (Verdict.NEUTRAL, logging.INFO),
    Kind.DEADLINE: (Verdict.NEUTRAL, logging.INFO),
    Kind.OVERLOAD: (Verdict.NEUTRAL, logging.WARNING),
    Kind.ENGINE_FAILURE: (Verdict.FAILURE, logging.WARNING),
    Kind.CLIENT_ERROR: (Verdict.NEUTRAL, logging.INFO),
    Kind.BUG: (Verdict.NEUTRAL, logging.ERROR),
}

#: Exceptions that mean the client's connection is gone (a write to a closed socket).
CLIENT_GONE_ERRORS: tuple[type[BaseException], ...] = (ConnectionResetError, BrokenPipeError)


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind
    #: The status as counted and logged ("200", "499", "503" ...).
    status: str
    verdict: Verdict
    level: int
    #: The error as reported to the client (None on success and for a client gone).
    error: BaseException | None = None


SUCCESS = Outcome(Kind.SUCCESS, "200", Verdict.SUCCESS, logging.INFO)


def _outcome(kind: Kind, status: int, error: BaseException | None) -> Outcome:
    verdict, level = _EFFECTS[kind]
    return Outcome(kind, str(status), verdict, level, error)


def classify(error: BaseException | None, deadline_passed: bool = False) -> Outcome:
    """How a request that ended with ``error`` (None: it succeeded) is counted."""
    if error is None:
        return SUCCESS
    if isinstance(error, LknError):
        status = error.status()
        if isinstance(error, DeadlineExceeded) or (
            deadline_passed and isinstance(error, EngineError)
        ):
            return _outcome(Kind.DEADLINE, 504, error)
        if isinstance(error, ClientClosed):
            return _outcome(Kind.CLIENT_GONE, 499, None)
        if isinstance(
            error, (EngineOverloaded, TooManyRequests, NoEngineAvailable, ShuttingDown)
        ):
            return _outcome(Kind.OVERLOAD, status, error)
        if error.counts_against_engine:
            return _outcome(Kind.ENGINE_FAILURE, status, error)
        if status < 500:
            return _outcome(Kind.CLIENT_ERROR, status, error)
        return _outcome(Kind.ENGINE_FAILURE if isinstance(error, EngineError) else Kind.BUG,
                        status, error)
    if isinstance(error, (asyncio.CancelledError, GeneratorExit, *CLIENT_GONE_ERRORS)):
        if deadline_passed:
            return _outcome(Kind.DEADLINE, 504, DeadlineExceeded("the request deadline expired"))
        return _outcome(Kind.CLIENT_GONE, 499, None)
    return _outcome(Kind.BUG, 500, error)

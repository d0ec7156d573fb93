"""The end of every request: one metric and one log line, whatever happened.

An exchange reports itself here when it ends (:meth:`Report.finished`); a request refused
before its exchange began (bad body, bad key, body too large) through :meth:`Report.reject`.
Log lines name the request and the engine, never the prompt (unless ``LKN_LOG_PROMPTS``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Protocol

from lkn.errors import is_counted, mark_counted
from lkn.metrics import Metrics
from lkn.outcome import Kind, Outcome, classify
from lkn.values import Decision, GenerateRequest, Usage

log = logging.getLogger("lkn.gateway")


class Ended(Protocol):
    """What the report reads of a finished exchange."""

    @property
    def frontend(self) -> str: ...
    @property
    def route(self) -> str: ...
    @property
    def request_id(self) -> str: ...
    @property
    def engine(self) -> str: ...
    @property
    def started(self) -> float: ...
    @property
    def usage(self) -> Usage | None: ...
    @property
    def decision(self) -> Decision: ...
    @property
    def loop_stopped(self) -> bool: ...


class Report:
    """Counts and logs requests (``lkn_requests_total``, durations, errors, tokens)."""

    def __init__(self, metrics: Metrics, clock: Callable[[], float], log_prompts: bool) -> None:
        self._metrics = metrics
        self._clock = clock
        self._log_prompts = log_prompts

    def prompt(self, request: GenerateRequest) -> None:
        """Prompts are private: logged only when LKN_LOG_PROMPTS is on."""
        if self._log_prompts:
            field = "messages" if "messages" in request.body else "prompt"
            log.info("prompt rid=%s %s=%s", request.request_id, field,
                     json.dumps(request.body.get(field), ensure_ascii=False))

    def finished(self, ended: Ended, outcome: Outcome) -> None:
        """One finished exchange: count it, log it once."""
        usage, metrics = ended.usage, self._metrics
        if usage is not None:
            metrics.child(metrics.tokens, "prompt").inc(usage.prompt_tokens)
            metrics.child(metrics.tokens, "completion").inc(usage.completion_tokens)
        elapsed = self._clock() - ended.started
        metrics.child(metrics.duration, ended.route).observe(elapsed)
        self._count(ended.frontend, ended.route, outcome)
        if outcome.kind is Kind.SUCCESS:
            if log.isEnabledFor(logging.INFO):
                decision = ended.decision
                log.info(
                    "request rid=%s engine=%s frontend=%s route=%s mode=%s strategy=%s "
                    "signals=%s score=%s status=200 outcome=success loop=%d duration_ms=%.1f",
                    ended.request_id, ended.engine or "-", ended.frontend, ended.route,
                    decision.mode.value, decision.strategy, ",".join(decision.signals) or "-",
                    decision.score_text or "-", ended.loop_stopped, elapsed * 1000.0,
                )
            return
        self._failed(ended.frontend, ended.route, ended.request_id, ended.engine, outcome,
                     elapsed * 1000.0)

    def reject(self, frontend: str, route: str, error: BaseException, rid: str = "-") -> None:
        """Count and log a request refused before its exchange began; an error already
        counted by an exchange is left alone."""
        if is_counted(error):
            return
        outcome = classify(error)
        self._count(frontend, route, outcome)
        self._failed(frontend, route, rid, "", outcome, 0.0)

    def loop_stopped(self, model: str | None) -> None:
        """The loop guard ended an answer (counted by the engine's model)."""
        self._metrics.child(self._metrics.loops_stopped, model or "-").inc()

    def _count(self, frontend: str, route: str, outcome: Outcome) -> None:
        metrics = self._metrics
        metrics.child(metrics.requests, frontend, route, outcome.status).inc()

    def _failed(self, frontend: str, route: str, rid: str, engine: str, outcome: Outcome,
                elapsed_ms: float) -> None:  # fmt: skip
        error = outcome.error
        if error is not None:
            self._metrics.child(self._metrics.errors, type(error).__name__).inc()
            mark_counted(error)
        if log.isEnabledFor(outcome.level):
            log.log(
                outcome.level,
                "request rid=%s engine=%s frontend=%s route=%s status=%s outcome=%s "
                "duration_ms=%.1f error=%s message=%r",
                rid, engine or "-", frontend, route, outcome.status, outcome.kind.value,
                elapsed_ms, type(error).__name__ if error is not None else "-",
                str(error) if error is not None else "",
                exc_info=error if outcome.kind is Kind.BUG else None,
            )

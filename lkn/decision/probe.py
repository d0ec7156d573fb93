"""Runs one entropy probe within its time budget; a failed probe becomes a fallback, never an error.

The probe asks the generating engine for ``probe_tokens`` greedy tokens with the top-K
logprobs, on the same prompt (and the engine's own model name) the generation will use.
Client cancellation still propagates; everything else (engine errors, timeouts) is reported.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from lkn.config import DecisionSettings
from lkn.decision.entropy import EntropyReading, read_positions
from lkn.engines import EngineClient
from lkn.errors import EngineTimeout, LknError
from lkn.values import GenerateRequest, JSONObject, ProbeResult, Route

log = logging.getLogger("lkn.decision")



@dataclass(frozen=True)
class ProbeOutcome:
    """A usable reading, or why there is none (``fallback``, and its metric label ``reason``)."""

    result: ProbeResult | None = None
    reading: EntropyReading | None = None
    fallback: str | None = None
    reason: str | None = None


def probe_body(request: GenerateRequest) -> JSONObject:
    """The generation's prompt as the engine will see it (the engine client maps the model
    name for both, so the probe and the generation share the engine's prefix cache)."""
    prompt = request.body.get("prompt")
    if request.route is Route.COMPLETION and isinstance(prompt, list) and len(prompt) == 1:
        return {**request.body, "prompt": prompt[0]}
    return request.body


def _failed(exc: BaseException) -> ProbeOutcome:
    # It travels in a response header: the error's kind and the engine's status, never its
    # text (which can quote the request) or the engine's address.
    status = getattr(exc, "upstream_status", None)
    detail = f"engine status {status}" if isinstance(status, int) else ""
    name = type(exc).__name__
    return ProbeOutcome(
        fallback=f"probe_failed: {name}: {detail}" if detail else f"probe_failed: {name}",
        reason="failed",
    )


_TIMEOUT = ProbeOutcome(fallback="probe_timeout", reason="timeout")


async def run_probe(
    request: GenerateRequest,
    engine: EngineClient | None,
    settings: DecisionSettings,
    deadline: float | None,
) -> ProbeOutcome:
    """Probe ``engine`` within ``min(probe_timeout, time left before deadline)``."""
    if engine is None:
        return ProbeOutcome(fallback="probe_failed: no engine", reason="failed")
    budget = settings.probe_timeout
    if deadline is not None:
        budget = min(budget, deadline - time.monotonic())
    if budget <= 0:
        return _TIMEOUT
    answer = await _ask(request, engine, settings, deadline, budget)
    if isinstance(answer, ProbeOutcome):
        return answer
    return _read(request, engine, answer, settings.score_feature)


async def _ask(request: GenerateRequest, engine: EngineClient, settings: DecisionSettings,
               deadline: float | None, budget: float) -> ProbeResult | ProbeOutcome:  # fmt: skip
    """The engine's answer to the probe, or the outcome of a probe that got none."""
    try:
        # wait_for enforces the budget: cancelling the call makes the client send an
        # explicit abort for the probe's rid (an HTTP timeout would only drop the socket).
        return await asyncio.wait_for(
            engine.probe(
                request.route, probe_body(request), request.request_id + "-probe",
                settings.probe_top_k, settings.probe_tokens, deadline,
            ),
            budget,
        )
    except (asyncio.TimeoutError, EngineTimeout):
        log.warning(
            "probe timed out rid=%s engine=%s budget=%.3fs", request.request_id, engine.name, budget
        )
        return _TIMEOUT
    except LknError as exc:
        log.warning(
            "probe failed rid=%s engine=%s error=%s message=%r",
            request.request_id, engine.name, type(exc).__name__, str(exc),
        )
        return _failed(exc)
    except Exception as exc:  # a bug in the probe path must not fail the request
        log.exception("probe crashed rid=%s engine=%s", request.request_id, engine.name)
        return _failed(exc)


def _read(request: GenerateRequest, engine: EngineClient, result: ProbeResult,
          feature: str) -> ProbeOutcome:  # fmt: skip
    """The reading of the probe's logprobs, or why there is none."""
    reading = read_positions(result.positions, chosen=result.chosen or None, feature=feature)
    if reading is None:
        log.warning(
            "probe unusable rid=%s engine=%s positions=%d",
            request.request_id, engine.name, len(result.positions),
        )
        return ProbeOutcome(result=result, fallback="probe_unusable: no logprobs",
                            reason="unusable")
    return ProbeOutcome(result=result, reading=reading)

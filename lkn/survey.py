"""Probe a set of prompts through the engine pool and collect their entropy scores.

Backs ``lkn calibrate``: each JSONL line is ``{"prompt": "..."}`` (completions) or
``{"messages": [...]}`` (chat); the probe is the one the decider runs for real requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

from lkn.config import Settings
from lkn.decision.probe import ProbeOutcome, run_probe
from lkn.errors import LknError
from lkn.metrics import Metrics
from lkn.pool import EnginePool, Lease, Outcome
from lkn.client_request import parse_request
from lkn.values import GenerateRequest, Route

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SurveyResult:
    scores: tuple[float, ...]
    #: Fallback reason -> how many prompts could not be scored for it.
    failures: dict[str, int]


def load_prompts(path: Path) -> list[GenerateRequest]:
    """Parse the JSONL file; raises ``ValueError`` naming the first bad line."""
    requests: list[GenerateRequest] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                body = json.loads(line)
                if not isinstance(body, dict):
                    raise ValueError("expected a JSON object")
                route = Route.CHAT if "messages" in body else Route.COMPLETION
                requests.append(parse_request(route, body, uuid.uuid4().hex))
            except (ValueError, LknError) as exc:
                raise ValueError(f"{path}:{number}: {exc}") from None
    if not requests:
        raise ValueError(f"{path}: no prompts")
    return requests


async def survey(
    settings: Settings, requests: list[GenerateRequest], concurrency: int = 4
) -> SurveyResult:
    """Probe every request (``settings.decision`` sets top-K, tokens and timeout)."""
    metrics = Metrics()
    pool = EnginePool.from_settings(settings, metrics)
    await pool.start()
    gate = asyncio.Semaphore(concurrency)

    async def one(request: GenerateRequest) -> ProbeOutcome:
        async with gate:
            async def attempt(lease: Lease) -> ProbeOutcome:
                return await run_probe(request, lease.engine.client, settings.decision, None)

            try:
                lease, outcome = await pool.run(attempt)
            except LknError as exc:
                return ProbeOutcome(fallback=f"no engine: {exc}", reason="no_engine")
            pool.settle(lease, Outcome.SUCCESS if outcome.reading else Outcome.NEUTRAL)
            return outcome

    try:
        outcomes = await asyncio.gather(*(one(r) for r in requests))
    finally:
        await pool.close()
    scores = tuple(o.reading.score for o in outcomes if o.reading is not None)
    failures: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.reading is None:
            key = outcome.reason or "failed"
            failures[key] = failures.get(key, 0) + 1
    return SurveyResult(scores, failures)


def survey_settings(
    settings: Settings, top_k: int | None, tokens: int | None, timeout: float
) -> Settings:
    decision = replace(
        settings.decision,
        probe_top_k=top_k or settings.decision.probe_top_k,
        probe_tokens=tokens or settings.decision.probe_tokens,
        probe_timeout=timeout,
    )
    return replace(settings, decision=decision)

"""An in-process engine for pool and lifecycle unit tests (no sockets, no sleeping).

It implements :class:`lkn.engines.EngineClient` and is scripted per generation call with
:class:`Step` values; integration tests use the real-socket SGLang double instead
(scripts/lib/sglang_double.py). :class:`FakeClock` is the time the pool and breakers read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lkn.breaker import Verdict
from lkn.config import Settings
from lkn.decision import Decider
from lkn.engines.wire import parse_chunk
from lkn.gateway import Gateway
from lkn.metrics import Metrics
from lkn.pool import EnginePool
from lkn.values import Chunk, JSONObject, ProbeResult, Route, TopToken
from tests.clock import FakeClock

__all__ = ["FakeClock", "FakeEngine", "Step", "fake_gateway", "Verdict"]


@dataclass
class Step:
    """What the engine does for one generation call.

    ``error`` raised before anything (or after ``after`` chunks when ``after`` is set);
    ``finish`` None ends the stream with no finish reason; ``bug`` yields a chunk that is not
    one (a bug between the engine and the front-end); ``hold`` makes the call wait for that
    event after its success status (non-streamed) or after its first chunk (streamed).
    """

    error: BaseException | None = None
    after: int | None = None
    tokens: int = 3
    finish: str | None = "stop"
    bug: bool = False
    hold: asyncio.Event | None = None


@dataclass
class FakeEngine:
    name: str = "fake:1"
    model_id: str | None = "smollm2"
    max_model_len: int | None = 8192
    ready: bool = True
    #: Raised by the next readiness checks, one each (then ``ready`` answers).
    check_errors: list[BaseException] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    aborts: list[str] = field(default_factory=list)
    probe_error: BaseException | None = None

    @property
    def url(self) -> str:
        return "fake://" + self.name

    def _step(self) -> Step:
        return self.steps.pop(0) if self.steps else Step()

    def _chunk(self, text: str, finish: str | None = None) -> Chunk:
        event: JSONObject = {
            "object": "chat.completion.chunk", "model": self.model_id,
            "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}],
        }  # fmt: skip
        return parse_chunk(json.dumps(event).encode(), self.name)

    async def complete(
        self,
        route: Route | str,
        body: JSONObject,
        rid: str,
        deadline: float | None = None,
        answered: Callable[[], None] | None = None,
    ) -> tuple[bytes, JSONObject]:
        self.calls.append(("complete", rid))
        step = self._step()
        if step.error is not None:
            raise step.error
        if answered is not None:
            answered()
        if step.hold is not None:
            await step.hold.wait()
        reply: JSONObject = {
            "object": "chat.completion", "model": self.model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                         "finish_reason": step.finish}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }  # fmt: skip
        raw = json.dumps(reply).encode()
        return raw, reply

    def stream(
        self, route: Route, body: JSONObject, rid: str, deadline: float | None = None
    ) -> AsyncIterator[Chunk]:
        self.calls.append(("stream", rid))
        return self._stream(rid, self._step())

    async def _stream(self, rid: str, step: Step) -> AsyncIterator[Chunk]:
        done = False
        try:
            if step.error is not None and step.after is None:
                raise step.error
            for i in range(step.tokens):
                if step.error is not None and step.after == i:
                    raise step.error
                if step.bug and i == 1:
                    yield Chunk(raw=None)  # type: ignore[arg-type]
                last = i == step.tokens - 1
                yield self._chunk(f"w{i} ", step.finish if last else None)
                if i == 0 and step.hold is not None:
                    await step.hold.wait()
            done = True
        finally:
            if not done:
                self.aborts.append(rid)

    async def probe(
        self,
        route: Route,
        body: JSONObject,
        rid: str,
        top_k: int,
        tokens: int,
        deadline: float | None = None,
    ) -> ProbeResult:
        self.calls.append(("probe", rid))
        if self.probe_error is not None:
            raise self.probe_error
        flat = tuple(TopToken(f"t{i}", -2.302585) for i in range(10))
        return ProbeResult(positions=(flat,), latency_ms=1.0, engine=self.name)

    async def check_ready(self, timeout: float) -> bool:
        if self.check_errors:
            raise self.check_errors.pop(0)
        return self.ready

    def abort(self, rid: str) -> None:
        self.aborts.append(rid)

    async def close(self) -> None:
        return None

    def generations(self) -> int:
        return sum(1 for kind, _ in self.calls if kind in ("complete", "stream"))


def fake_gateway(settings: Settings, engines: Sequence[FakeEngine], clock: FakeClock | None = None,
                 **_: Any) -> Gateway:  # fmt: skip
    """A gateway over in-process engines (its readiness loop is not started)."""
    metrics = Metrics()
    pool = EnginePool(settings, list(engines), metrics, clock or FakeClock())
    return Gateway(settings, pool, Decider(settings.decision, metrics), metrics)

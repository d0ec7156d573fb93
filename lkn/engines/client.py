"""HTTP client for one engine: SGLang (native + OpenAI surfaces) or a generic OpenAI server.

One ``aiohttp.ClientSession`` per engine (keep-alive pool, TCP_NODELAY on every socket).
Every engine request carries our own request id (``rid``) so it can be aborted. Errors are
raised as :mod:`lkn.errors` types, mapped in :mod:`lkn.engines.wire`.

Abandoning: whenever the gateway stops reading a request before the engine finished it
(client gone, timeout, a malformed event, the stream closed early), the upstream response is
closed and, for SGLang, ``POST /abort_request`` is sent with the rid.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from types import TracebackType

import aiohttp
from yarl import URL

from lkn.config import EngineSpec, Settings
from lkn.engines.batches import ChunkStream
from lkn.engines.lines import read_lines, release_at_end
from lkn.engines import resend
from lkn.engines.probes import probe_positions, probe_request
from lkn.engines.wire import (
    error_for_status,
    error_message,
    parse_chunk,
    raise_for_event,
    sse_payloads,
)
from lkn.errors import EngineError, EngineTimeout, EngineUnavailable
from lkn.values import Chunk, JSONObject, ProbeResult, Route

log = logging.getLogger(__name__)

_JSON_HEADERS = {"Content-Type": "application/json"}
_DONE = b"[DONE]"


#: Seconds an idle connection to the engine is kept for the next request: llama.cpp's server
#: closes idle ones after 5 s, so OpenAI-compatible engines get one well under that
#: (:mod:`.resend` covers the rest).
KEEPALIVE_SGLANG = 30.0
KEEPALIVE_OPENAI = 2.0


class HttpEngineClient:
    """Talks to one engine over HTTP (implements :class:`~lkn.engines.base.EngineClient`).
    Create inside a running loop; close with :meth:`close`."""

    def __init__(self, spec: EngineSpec, settings: Settings) -> None:
        self.spec = spec
        #: The engine's one name (logs, metrics, /ready, X-LKN-Engine): see Settings.engine_name.
        self.name = settings.engine_name(spec)
        self.url = spec.url
        self.supports_abort = spec.kind == "sglang"
        self._settings = settings
        connector = resend.ReuseConnector(
            limit=settings.engine_connections,
            limit_per_host=settings.engine_connections,
            keepalive_timeout=KEEPALIVE_SGLANG if spec.kind == "sglang" else KEEPALIVE_OPENAI,
            enable_cleanup_closed=False,
        )
        # An explicit per-request timeout of None would disable timeouts: always pass one.
        self._default_timeout = aiohttp.ClientTimeout(
            total=settings.request_timeout or None,
            sock_connect=settings.connect_timeout,
            sock_read=settings.read_timeout,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._default_timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
            json_serialize=json.dumps,
            # SGLang started with --api-key (ENGINE_API_KEY) wants it on every route.
            headers=({"Authorization": f"Bearer {settings.engine_api_key}"}
                     if settings.engine_api_key else None),
        )
        self._background: set[asyncio.Task[None]] = set()
        #: Absolute URLs per path, built once (joining a base URL costs on every request).
        self._urls: dict[str, URL] = {}
        #: The engine's served model name, learnt from ``/v1/models``.
        self.model_id: str | None = None
        self.max_model_len: int | None = None
        #: Requests sent again on a new connection after a kept one was dropped (``_send``).
        self.resends = 0

    def _url(self, path: str) -> URL:
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = URL(self.url + path)
        return url

    async def close(self) -> None:
        if self._background:
            await asyncio.wait(self._background, timeout=2.0)
        await self._session.close()

    # ---- generation -----------------------------------------------------------------

    def _timeout(self, deadline: float | None) -> aiohttp.ClientTimeout:
        if deadline is None:
            return self._default_timeout
        remaining = max(0.001, deadline - time.monotonic())
        if self._settings.request_timeout:  # one rule: the tighter of the two bounds
            remaining = min(remaining, self._settings.request_timeout)
        return aiohttp.ClientTimeout(
            total=remaining,
            sock_connect=min(self._settings.connect_timeout, remaining),
            sock_read=min(self._settings.read_timeout, remaining),
        )

    async def _post(
        self, path: str, body: JSONObject, rid: str, deadline: float | None
    ) -> aiohttp.ClientResponse:
        """POST and return a 200 response (the caller releases it); raise typed errors.

        Every request carries our ``rid`` (engines that can abort) and, on the OpenAI routes,
        the engine's served model name: that maps mode variants and ``name:tag`` (which SGLang
        would read as a LoRA adapter) back to the model the engine serves.
        """
        wire = dict(body)
        if self.supports_abort:
            wire["rid"] = rid
        if self.model_id is not None and path.startswith("/v1/"):
            wire["model"] = self.model_id
        if not self.supports_abort and "repetition_penalty" in wire:
            # llama.cpp's server reads its own name and ignores SGLang's / vLLM's.
            wire.setdefault("repeat_penalty", wire["repetition_penalty"])
        with self._errors(rid, "before answering"):
            response = await self._send(path, json.dumps(wire).encode(), deadline)
        if response.status != 200:
            try:
                payload = await response.read()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                payload = b""
            finally:
                response.release()
            retry_after = _retry_after(response.headers.get("Retry-After"))
            raise error_for_status(
                response.status, error_message(payload), self.name, retry_after
            )
        return response

    async def _send(self, path: str, data: bytes, deadline: float | None) -> aiohttp.ClientResponse:
        """POST ``data`` (:func:`.resend.post`: once more if a kept connection was dropped)."""
        response, resent = await resend.post(self._session, self._url(path), data,
                                             _JSON_HEADERS, self._timeout(deadline))
        if resent:
            self.resends += 1
            log.info("engine dropped a kept connection, request sent again engine=%s", self.name)
        return response

    async def complete(
        self,
        route: Route | str,
        body: JSONObject,
        rid: str,
        deadline: float | None = None,
        answered: Callable[[], None] | None = None,
    ) -> tuple[bytes, JSONObject]:
        """One non-streamed request: the engine's raw body and its parsed JSON."""
        path = route.value if isinstance(route, Route) else route
        response = await self._post(path, body, rid, deadline)
        try:
            if answered is not None:
                answered()
            with self._errors(rid, "while answering"):
                raw = await response.read()
        finally:
            response.release()
        try:
            parsed = json.loads(raw)
        except ValueError:
            raise EngineError(f"engine {self.name} sent invalid JSON", engine=self.name) from None
        if not isinstance(parsed, dict):
            raise EngineError(f"engine {self.name} sent invalid JSON", engine=self.name)
        raise_for_event(parsed, self.name)
        return raw, parsed

    def stream(
        self, route: Route, body: JSONObject, rid: str, deadline: float | None = None
    ) -> ChunkStream:
        """Stream chunks until ``[DONE]``; a stream that ends without it is an error. However
        the stream is left before ``[DONE]`` (closed early, cancelled, a malformed event, a
        broken connection), the engine is told to drop ``rid``. The chunks of one network
        read come as one batch (:class:`~lkn.engines.batches.ChunkStream`)."""
        return ChunkStream(self._batches(route, body, rid, deadline))

    async def _batches(
        self, route: Route, body: JSONObject, rid: str, deadline: float | None
    ) -> AsyncGenerator[list[Chunk], None]:
        response = await self._post(route.value, body, rid, deadline)
        done = False
        try:
            with self._errors(rid, "mid-stream", abort=False):
                async for lines in read_lines(response.content):
                    chunks, ended, error = self._chunks(sse_payloads(lines))
                    if chunks:
                        yield chunks
                    # What came after them counts once they have been taken, as it would
                    # one event at a time: a malformed event, or the end marker.
                    if error is not None:
                        raise error
                    if ended:
                        done = True
                        break
        finally:
            if done:
                release_at_end(response)
            else:
                response.close()
                self.abort(rid)
        if not done:
            raise EngineError(
                f"engine {self.name} ended the stream without [DONE]", engine=self.name
            )

    def _chunks(self, payloads: list[bytes]) -> tuple[list[Chunk], bool, Exception | None]:
        """The chunks of one read's payloads up to ``[DONE]`` (and whether it came), or up
        to the first that cannot be read (and its error)."""
        chunks: list[Chunk] = []
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            if payload == _DONE:
                return chunks, True, None
            try:
                chunk = parse_chunk(payload, self.name)
            except Exception as exc:  # raised once the chunks before it were taken
                return chunks, False, exc
            chunk.more = i < last
            chunks.append(chunk)
        return chunks, False, None

    @contextmanager
    def _errors(self, rid: str, when: str, abort: bool = True) -> Iterator[None]:
        """The one translation of transport failures into :mod:`lkn.errors`.

        When the gateway gives up on a request (client gone, timeout) the engine is told to
        drop it too (``abort``; streams do that themselves for every way out).
        """
        try:
            yield
        except (asyncio.CancelledError, GeneratorExit):
            if abort:
                self.abort(rid)
            raise
        except asyncio.TimeoutError:
            if abort:
                self.abort(rid)
            raise EngineTimeout(
                f"engine {self.name} timed out {when}", engine=self.name
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise EngineUnavailable(
                f"engine {self.name} is unreachable: {exc.os_error.strerror or exc}",
                engine=self.name,
            ) from None
        except aiohttp.ClientError as exc:
            raise EngineError(
                f"engine {self.name} failed {when}: {type(exc).__name__}", engine=self.name
            ) from None

    def abort(self, rid: str) -> None:
        """Ask SGLang to drop ``rid`` (fire and forget; closing the socket also aborts)."""
        if not self.supports_abort or self._session.closed:
            return
        task = asyncio.get_running_loop().create_task(self._abort(rid))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _abort(self, rid: str) -> None:
        try:
            async with self._session.post(
                self._url("/abort_request"),
                data=json.dumps({"rid": rid}).encode(),
                headers=_JSON_HEADERS,
                timeout=aiohttp.ClientTimeout(total=5.0),
            ) as response:
                await response.read()
            log.info("engine abort sent rid=%s engine=%s", rid, self.name)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.warning("engine abort failed rid=%s engine=%s error=%r", rid, self.name, exc)

    # ---- probes ---------------------------------------------------------------------

    async def probe(
        self,
        route: Route,
        body: JSONObject,
        rid: str,
        top_k: int,
        tokens: int,
        deadline: float | None = None,
    ) -> ProbeResult:
        """Generate ``tokens`` tokens greedily and return the top-K logprobs per position
        (the request: :func:`lkn.engines.probes.probe_request`)."""
        started = time.perf_counter()
        path, probe = probe_request(route, body, self.spec.kind, top_k, tokens)
        _, parsed = await self.complete(path, probe, rid, deadline)
        latency = (time.perf_counter() - started) * 1000.0
        return ProbeResult(positions=probe_positions(parsed), latency_ms=latency, engine=self.name)

    # ---- health ---------------------------------------------------------------------

    async def check_ready(self, timeout: float) -> bool:
        """``GET /ready`` (SGLang >= 0.5), falling back to ``/health`` for older servers.

        Raises :class:`EngineUnavailable` when the engine cannot be reached at all, and
        :class:`EngineTimeout` when it does not answer in time (a busy engine).
        """
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        try:
            for path in ("ready", "health"):
                async with self._session.get(self._url("/" + path),
                                             timeout=client_timeout) as response:
                    await response.read()
                    if response.status in (404, 405) and path == "ready":
                        continue
                    ready = response.status == 200
                    break
            else:
                ready = False
            if ready and self.model_id is None:
                await self._learn_model(client_timeout)
            return ready
        except asyncio.TimeoutError:
            raise EngineTimeout(
                f"engine {self.name} did not answer its readiness check in {timeout:g} s",
                engine=self.name,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise EngineUnavailable(
                f"engine {self.name} is unreachable: {type(exc).__name__}", engine=self.name
            ) from None

    async def waiting(self, timeout: float) -> float | None:
        """Requests waiting in the engine's queue (SGLang ``GET /v1/loads``, summed over its
        data-parallel ranks); None when the engine does not say."""
        try:
            async with self._session.get(
                self._url("/v1/loads"), timeout=aiohttp.ClientTimeout(total=timeout)
            ) as response:
                if response.status != 200:
                    await response.read()
                    return None
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
            return None
        loads = data.get("loads") if isinstance(data, dict) else None
        if not isinstance(loads, list):
            return None
        counts = [entry.get("num_waiting_reqs") for entry in loads if isinstance(entry, dict)]
        numbers = [c for c in counts if isinstance(c, (int, float)) and not isinstance(c, bool)]
        return float(sum(numbers)) if numbers else None

    async def _learn_model(self, timeout: aiohttp.ClientTimeout) -> None:
        async with self._session.get(self._url("/v1/models"), timeout=timeout) as response:
            if response.status != 200:
                return
            try:
                data = await response.json(content_type=None)
            except ValueError:
                return
        cards = data.get("data") if isinstance(data, dict) else None
        if isinstance(cards, list) and cards and isinstance(cards[0], dict):
            model = cards[0].get("id")
            if isinstance(model, str):
                self.model_id = model
            max_len = cards[0].get("max_model_len")
            if isinstance(max_len, int):
                self.max_model_len = max_len

    async def __aenter__(self) -> HttpEngineClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None

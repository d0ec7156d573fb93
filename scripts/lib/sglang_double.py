"""A test double of an SGLang 0.5.23 HTTP server: a real aiohttp server on 127.0.0.1 that speaks
SGLang's wire format (the SGLang wire reference), records every request
and injects scripted faults. Also runnable: ``python -m scripts.lib.sglang_double --port 0``."""

from __future__ import annotations

import argparse
import asyncio
import enum
import importlib
import json
import signal
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, cast

from aiohttp import web

VERSION = "0.5.23"
EOS_ID = 2
MAX_MODEL_LEN = 8192
DEFAULT_REPLY_TOKENS = 16
NATIVE_DEFAULT_MAX_NEW_TOKENS = 128
COMPLETIONS_DEFAULT_MAX_TOKENS = 16
QUEUE_FULL = "The request queue is full."
GENERATION_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/generate"})
SAMPLING_KEYS = (
    "max_new_tokens", "stop", "stop_token_ids", "stop_regex", "temperature", "top_p", "top_k",
    "min_p", "frequency_penalty", "presence_penalty", "repetition_penalty", "min_new_tokens", "n",
    "json_schema", "regex", "ebnf", "structural_tag", "ignore_eos", "skip_special_tokens",
    "spaces_between_special_tokens", "no_stop_trim", "stream_interval", "logit_bias",
    "sampling_seed", "custom_params", "beam_width", "watermark", "choice",
)  # fmt: skip
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_DONE = b"data: [DONE]\n\n"
_ALTERNATIVES = tuple(
    [" the", " a", " and", ",", ".", " of", " to", " in", " is", " it"]
    + [f" alt{j}" for j in range(10, 100)]
)


class Fault(enum.Enum):
    """One scripted misbehaviour, consumed by one generation request (see `SGLangDouble.script`)."""

    HTTP_500 = "http_500"
    HTTP_503 = "http_503"
    HTTP_400 = "http_400"
    DROP_BEFORE = "drop_before"
    DROP_MID_STREAM = "drop_mid_stream"
    STALL = "stall"
    STALL_MID_STREAM = "stall_mid_stream"
    ERROR_EVENT = "error_event"
    ABORT_503 = "abort_503"
    SLOW = "slow"
    #: A validation error that quotes the request back, as SGLang's pydantic errors do (400
    #: JSON when not streamed, an error event on a 200 stream otherwise).
    ECHO_ERROR = "echo_error"
    #: Mid-stream: `[DONE]` with no finish chunk (a proxy that cut the stream short).
    DONE_EARLY = "done_early"
    #: Mid-stream: an event that is not JSON, then silence until the request is aborted.
    MALFORMED = "malformed"
    #: The whole answer, its finish chunk and usage, then the connection drops before
    #: `[DONE]` (a proxy or engine restarting at the wrong moment).
    DROP_AFTER_FINISH = "drop_after_finish"


_MID_STREAM = frozenset(
    {Fault.DROP_MID_STREAM, Fault.STALL_MID_STREAM, Fault.ERROR_EVENT, Fault.ABORT_503, Fault.DONE_EARLY,
     Fault.MALFORMED}
)


@dataclass
class Received:
    """One request as it arrived; `body` is the parsed JSON or None."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


@dataclass(frozen=True, slots=True)
class _Token:
    text: str
    id: int
    logprob: float


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the fake model will say: the tokens and how it ends if nothing interrupts it."""

    tokens: list[_Token]
    finish: str  # "stop" | "length" | "tool_calls"
    matched: int | str | None
    tool_name: str | None = None


@dataclass(slots=True)
class _Job:
    rid: str
    aborted: bool = False
    dropped: bool = False
    waiter: asyncio.Future[None] | None = None


def _token_id(text: str) -> int:
    return zlib.crc32(text.encode()) % 49000 + 100


def _jstr(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _dumps(obj: Any) -> bytes:
    return _jstr(obj).encode()


def _event(obj: Any) -> bytes:
    return b"data: " + _dumps(obj) + b"\n\n"


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=_dumps(obj), content_type="application/json")


def _generic_error(status: int, message: str, kind: str) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": kind, "param": None, "code": status}


def _openai_error(status: int, message: str, kind: str) -> web.Response:
    return _json(_generic_error(status, message, kind), status)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _words(content: Any) -> list[str]:
    if isinstance(content, str):
        return content.split()
    if isinstance(content, list):
        return [w for part in content if isinstance(part, dict) for w in str(part.get("text", "")).split()]
    return []


def _stops(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for s in value if isinstance(s, str) and s]
    return []


def _opt_int(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


class _Vocab:
    """Deterministic logprobs: a fixed confident distribution, or the one the test configured."""

    def __init__(self, configured: list[tuple[str, float]] | None) -> None:
        self._configured = [(t, _token_id(t), lp) for t, lp in configured] if configured else None

    def chosen_logprob(self, position: int) -> float:
        if self._configured is not None:
            return self._configured[0][2]
        return round(-0.1 - 0.05 * (position % 4), 4)

    def top(self, token: _Token, k: int) -> list[tuple[str, int, float]]:
        if k <= 0:
            return []
        if self._configured is not None:
            return self._configured[:k]
        alts = [(t, _token_id(t), -3.5 - 0.5 * j) for j, t in enumerate(_ALTERNATIVES[: k - 1])]
        return [(token.text, token.id, token.logprob), *alts]


class _Renderer(Protocol):
    pull_first: bool  # True: pull the first token before committing to HTTP 200 (OpenAI routes)

    def opening(self) -> bytes: ...
    def token(self, i: int, last: bool, span: int = 1) -> bytes: ...
    def end(self, done: int, reason: str, final_sent: bool) -> bytes: ...
    def error_event(self, message: str) -> bytes: ...
    def abort_503(self, done: int) -> bytes: ...
    def body(self, done: int, reason: str) -> bytes: ...
    def error(self, status: int, message: str, kind: str) -> web.Response: ...


class _OpenAIRenderer:
    pull_first = True

    def __init__(
        self, *, rid: str, model: str, plan: _Plan, vocab: _Vocab, top_k: int | None,
        include_usage: bool, prompt_tokens: int,
    ) -> None:  # fmt: skip
        self.rid, self.model, self.plan, self.vocab = rid, model, plan, vocab
        self.top_k, self.include_usage, self.prompt_tokens = top_k, include_usage, prompt_tokens
        self.created = int(time.time())
        #: ``stream_options.continuous_usage_stats``: every content chunk carries the usage
        #: so far (SGLang's `openai/utils.py::should_include_usage`).
        self.continuous_usage = False

    def _running(self, done: int) -> dict[str, Any] | None:
        return self._usage(done, False) if self.continuous_usage else None

    def _matched(self, reason: str) -> int | str | None:
        return self.plan.matched if reason == "stop" else None

    def _usage(self, done: int, with_details: bool) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "total_tokens": self.prompt_tokens + done,
            "completion_tokens": done,
        }
        if with_details:
            usage["prompt_tokens_details"] = None
        usage["reasoning_tokens"] = 0
        if with_details:
            usage["completion_tokens_details"] = None
        return usage

    def error_event(self, message: str) -> bytes:
        return _event({"error": _generic_error(400, message, "BadRequestError")})

    def abort_503(self, done: int) -> bytes:
        return _event({"error": _generic_error(503, QUEUE_FULL, "SERVICE_UNAVAILABLE")})

    def error(self, status: int, message: str, kind: str) -> web.Response:
        return _openai_error(status, message, kind)


class _ChatRenderer(_OpenAIRenderer):
    def _chunk(self, delta: dict[str, Any], logprobs: Any = None, finish: str | None = None,
               matched: int | str | None = None, usage: Any = None) -> bytes:  # fmt: skip
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish, "matched_stop": matched}
        event = {"id": self.rid, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                 "choices": [choice]}  # fmt: skip
        if usage is not None:
            event["usage"] = usage
        return _event(event)

    def _logprob(self, tok: _Token, k: int) -> dict[str, Any]:
        top = [{"token": t, "bytes": list(t.encode()), "logprob": lp} for t, _, lp in self.vocab.top(tok, k)]
        return {"token": tok.text, "bytes": list(tok.text.encode()), "logprob": tok.logprob, "top_logprobs": top}

    def _tool_call(self, i: int, arguments: str) -> dict[str, Any]:
        if i > 0:
            return {"index": 0, "function": {"arguments": arguments}}
        call_id = "call_" + uuid.uuid5(uuid.NAMESPACE_OID, self.rid).hex[:24]
        return {"id": call_id, "index": 0, "type": "function",
                "function": {"name": self.plan.tool_name, "arguments": arguments}}  # fmt: skip

    #: Reasoning text sent before the answer (None: none), and the key it is sent under
    #: (SGLang's "reasoning_content"; "reasoning" imitates vLLM).
    reasoning: str | None = None
    reasoning_key: str = "reasoning_content"

    def opening(self) -> bytes:
        out = self._chunk({"reasoning_content": None, "role": "assistant", "content": ""})
        if self.reasoning is not None:
            for word in self.reasoning.split(" "):
                delta: dict[str, Any] = {"reasoning_content": None, "content": None}
                delta[self.reasoning_key] = word + " "
                out += self._chunk(delta)
        return out

    def token(self, i: int, last: bool, span: int = 1) -> bytes:
        tok = self.plan.tokens[i]
        if self.plan.tool_name is not None:
            return self._chunk({"reasoning_content": None, "tool_calls": [self._tool_call(i, tok.text)]})
        toks = self.plan.tokens[i + 1 - span : i + 1]
        logprobs = None if self.top_k is None else {"content": [self._logprob(t, self.top_k) for t in toks]}
        return self._chunk({"reasoning_content": None, "content": "".join(t.text for t in toks)}, logprobs,
                           usage=self._running(i + 1))

    def end(self, done: int, reason: str, final_sent: bool) -> bytes:
        out = self._chunk({"reasoning_content": None}, None, reason, self._matched(reason))
        if self.include_usage:
            out += _event(
                {"id": self.rid, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model, "choices": [], "usage": self._usage(done, False)}
            )  # fmt: skip
        return out

    #: ``n`` > 1 on a non-streamed chat answer: the texts of its other choices (SGLang answers
    #: one choice per sample, ``index`` 0..n-1, usage counting all of them).
    other_texts: Sequence[str] = ()

    def body(self, done: int, reason: str) -> bytes:
        answer = self._body(done, reason)
        first = answer["choices"][0]
        for index, text in enumerate(self.other_texts, 1):
            message = {**first["message"], "content": text}
            answer["choices"].append({**first, "index": index, "message": message, "logprobs": (
                {"content": [{"token": text, "bytes": list(text.encode()), "logprob": -0.5,
                              "top_logprobs": []}]} if first["logprobs"] else None)})
            answer["usage"]["completion_tokens"] += len(text.split())
            answer["usage"]["total_tokens"] += len(text.split())
        return _dumps(answer)

    def _body(self, done: int, reason: str) -> dict[str, Any]:
        tokens = self.plan.tokens[:done]
        text = "".join(t.text for t in tokens)
        message: dict[str, Any] = {"role": "assistant", "content": text, "reasoning_content": None}
        if self.reasoning is not None:
            message[self.reasoning_key] = self.reasoning
        if self.plan.tool_name is not None:
            message["content"] = None
            message["tool_calls"] = [self._tool_call(0, text)]
        logprobs = None
        if self.top_k is not None:
            logprobs = {"content": [self._logprob(t, self.top_k) for t in tokens]}
        return {
            "id": self.rid, "object": "chat.completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": reason,
                         "matched_stop": self._matched(reason)}],
            "usage": self._usage(done, True),
            "metadata": {"weight_version": "default"},
        }  # fmt: skip


class _CompletionRenderer(_OpenAIRenderer):
    def _logprobs(self, tokens: Sequence[_Token]) -> Any:
        if self.top_k is None:
            return None
        k = self.top_k
        tops = [{t: lp for t, _, lp in self.vocab.top(tok, k)} if k > 0 else None for tok in tokens]
        return {"text_offset": [-1] * len(tokens), "token_logprobs": [t.logprob for t in tokens],
                "tokens": [t.text for t in tokens], "top_logprobs": tops}  # fmt: skip

    def _chunk(self, text: str, logprobs: Any, finish: str | None, usage: Any = None) -> bytes:
        choice = {"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish,
                  "matched_stop": self._matched(finish) if finish else None}  # fmt: skip
        return _event(
            {"id": self.rid, "object": "text_completion", "created": self.created, "model": self.model,
             "choices": [choice], "usage": usage}
        )  # fmt: skip

    def opening(self) -> bytes:
        return b""

    def token(self, i: int, last: bool, span: int = 1) -> bytes:
        toks = self.plan.tokens[i + 1 - span : i + 1]
        return self._chunk("".join(t.text for t in toks), self._logprobs(toks),
                           self.plan.finish if last else None, self._running(i + 1))

    def end(self, done: int, reason: str, final_sent: bool) -> bytes:
        out = b"" if final_sent and reason != "abort" else self._chunk("", None, reason)
        if self.include_usage:
            out += _event(
                {"id": self.rid, "object": "text_completion", "created": self.created, "model": self.model,
                 "choices": [], "usage": self._usage(done, False)}
            )  # fmt: skip
        return out

    def body(self, done: int, reason: str) -> bytes:
        tokens = self.plan.tokens[:done]
        return _dumps({
            "id": self.rid, "object": "text_completion", "created": self.created, "model": self.model,
            "choices": [{"index": 0, "text": "".join(t.text for t in tokens), "logprobs": self._logprobs(tokens),
                         "finish_reason": reason, "matched_stop": self._matched(reason)}],
            "usage": self._usage(done, True),
            "metadata": {"weight_version": "default"},
        })  # fmt: skip


class _NativeRenderer:
    """`/generate`: cumulative text, output_ids and output logprobs in every chunk."""

    pull_first = False

    def __init__(
        self, *, rid: str, plan: _Plan, vocab: _Vocab, prompt_tokens: int, return_logprob: bool,
        top_k: int, text_in_logprobs: bool,
    ) -> None:  # fmt: skip
        self.rid, self.plan, self.vocab, self.prompt_tokens = rid, plan, vocab, prompt_tokens
        self.return_logprob, self.top_k, self.text_in_logprobs = return_logprob, top_k, text_in_logprobs
        self.started = time.monotonic()
        self.text = ""
        # The cumulative lists are kept pre-serialised, one JSON fragment per token, so a chunk
        # costs a join instead of re-encoding the whole history.
        self.ids: list[str] = []
        self.logprobs: list[str] = []
        self.tops: list[str] = []

    def _advance(self, done: int) -> None:
        with_text = self.text_in_logprobs
        for tok in self.plan.tokens[len(self.ids) : done]:
            self.text += tok.text
            self.ids.append(str(tok.id))
            if self.return_logprob:
                self.logprobs.append(_jstr([tok.logprob, tok.id, tok.text if with_text else None]))
                if self.top_k > 0:
                    top = [[lp, tid, t if with_text else None] for t, tid, lp in self.vocab.top(tok, self.top_k)]
                    self.tops.append(_jstr(top))

    def _finish(self, reason: str, done: int) -> dict[str, Any]:
        if reason == "abort":
            return {"type": "abort", "message": "Aborted", "status_code": None, "err_type": None}
        if reason == "length":
            return {"type": "length", "length": done}
        return {"type": "stop", "matched": self.plan.matched}

    def _output(self, done: int, finish: dict[str, Any] | None, first: bool) -> bytes:
        """One native result object (meta_info keys in SGLang's order), serialised."""
        self._advance(done)
        parts = ['{"text":', _jstr(self.text), ',"output_ids":[', ",".join(self.ids), '],"meta_info":{"id":',
                 _jstr(self.rid), ',"finish_reason":', _jstr(finish), ',"prompt_tokens":', str(self.prompt_tokens),
                 ',"weight_version":"default","num_retractions":0']  # fmt: skip
        if self.return_logprob:
            parts += [',"input_token_logprobs":[],"output_token_logprobs":[', ",".join(self.logprobs),
                      '],"output_token_logprobs_length":', str(len(self.logprobs))]  # fmt: skip
            if self.top_k > 0:
                parts += [',"input_top_logprobs":[],"output_top_logprobs":[', ",".join(self.tops), "]"]
        parts += [',"reasoning_tokens":0,"completion_tokens":', str(done), ',"cached_tokens":0']
        if finish is not None:
            parts += [',"e2e_latency":', _jstr(round(time.monotonic() - self.started, 6))]
        if first:
            parts += [',"response_sent_to_client_ts":', _jstr(time.time())]
        parts.append("}}")
        return "".join(parts).encode()

    def opening(self) -> bytes:
        return b""

    def token(self, i: int, last: bool, span: int = 1) -> bytes:
        finish = self._finish(self.plan.finish, i + 1) if last else None
        return b"data: " + self._output(i + 1, finish, i == 0) + b"\n\n"

    def end(self, done: int, reason: str, final_sent: bool) -> bytes:
        if final_sent and reason != "abort":
            return b""
        return b"data: " + self._output(done, self._finish(reason, done), done == 0) + b"\n\n"

    def error_event(self, message: str) -> bytes:
        return _event({"error": {"message": message, "type": "invalid_request_error", "code": 400, "retryable": False}})

    def abort_503(self, done: int) -> bytes:
        finish = {"type": "abort", "message": QUEUE_FULL, "status_code": 503, "err_type": None}
        return b"data: " + self._output(done, finish, done == 0) + b"\n\n"

    def body(self, done: int, reason: str) -> bytes:
        return self._output(done, self._finish(reason, done), True)

    def error(self, status: int, message: str, kind: str) -> web.Response:
        if status == 400:
            return _json({"error": {"message": message}}, 400)
        return _openai_error(status, message, kind)


class SGLangDouble:
    """A fake SGLang 0.5.23 server. Start with `start()` or `async with`; inspect `received`,
    `aborts`, `live_rids` and `cancelled_rids`; inject misbehaviour with `script()`.

    A generation emits one token per `token_delay` seconds (after `prefill_delay`); a token is one
    word. The text is `reply`, else "Echo: <first prompt words> w<i> ..." of exactly the requested
    max tokens (16 when unset). `top_logprobs` fixes the top-k list at every position (its first
    logprob is the chosen token's); otherwise a fixed confident distribution is used.
    Fault knobs: `slow_delay` is the per-token delay under Fault.SLOW, `fault_after` the number of
    content tokens sent before a mid-stream fault, `drop_grace` the pause before DROP_MID_STREAM
    cuts the connection. `refuse_with` (a status, e.g. 503) makes every generation request answer
    that status with SGLang's queue-full error until it is set back to None. Client disconnects
    cancel the handler (aiohttp `handler_cancellation`) and are recorded in `cancelled_rids`."""

    def __init__(
        self, *, model: str = "smollm2", reply: str | None = None, token_delay: float = 0.0,
        prefill_delay: float = 0.0, ready: bool = True, top_logprobs: list[tuple[str, float]] | None = None,
        slow_delay: float = 0.05, fault_after: int = 3, drop_grace: float = 0.05,
        alternating_roles: bool = False,
    ) -> None:  # fmt: skip
        self.model = model
        #: A chat template that raises on two turns of the same role in a row (Mistral's and
        #: Gemma's do): SGLang answers such a chat request 400 before generating anything.
        self.alternating_roles = alternating_roles
        self.ready = ready
        self.refuse_with: int | None = None
        #: Chat answers start with this reasoning text (None: none), sent under reasoning_key.
        self.reasoning: str | None = None
        #: Non-streamed chat answers with ``n`` > 1: the texts of choices 1..n-1, taken in
        #: order from this queue (empty: every choice says what the first says).
        self.choice_texts: list[str] = []
        self.reasoning_key = "reasoning_content"
        #: Tokens per streamed chunk (SGLang's ``--stream-interval``; 1 is its default).
        self.stream_interval = 1
        self.url = ""
        self.port = 0
        self.received: list[Received] = []
        self.aborts: list[str] = []
        self.cancelled_rids: list[str] = []
        self._reply = reply
        self._token_delay = token_delay
        self._prefill_delay = prefill_delay
        self._slow_delay = slow_delay
        self._fault_after = fault_after
        self._drop_grace = drop_grace
        self._vocab = _Vocab(top_logprobs)
        self._faults: list[tuple[str | None, Fault]] = []
        self._jobs: dict[str, _Job] = {}
        self._runner: web.AppRunner | None = None
        self._closing = False
        self._started = time.time()

    # -- public surface -------------------------------------------------------------------------
    @property
    def live_rids(self) -> set[str]:
        return set(self._jobs)

    def script(self, *faults: Fault, path: str | None = None) -> None:
        """Queue faults; each is consumed by the next valid generation request matching `path`
        (None: any of /v1/chat/completions, /v1/completions, /generate)."""
        self._faults.extend((path, f) for f in faults)

    def requests_to(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    async def start(self, port: int = 0) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        add, get = app.router.add_route, app.router.add_get
        for route in ("/health", "/health_generate", "/ready"):
            get(route, self._health)
        get("/model_info", self._model_info)
        get("/get_model_info", self._model_info)
        get("/server_info", self._server_info)
        get("/get_server_info", self._server_info)
        get("/v1/models", self._models)
        get("/v1/models/{model:.+}", self._model_card)
        get("/v1/loads", self._loads)
        add("POST", "/abort_request", self._abort_request)
        add("*", "/flush_cache", self._flush_cache)
        add("POST", "/v1/chat/completions", self._chat)
        add("POST", "/v1/completions", self._completions)
        add("POST", "/generate", self._generate)
        add("POST", "/v1/tokenize", self._tokenize)
        add("POST", "/tokenize", self._tokenize)
        add("PUT", "/generate", self._generate)
        add("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        self.url = f"http://127.0.0.1:{self.port}"

    async def close(self) -> None:
        """Stop serving; handlers still running are cancelled (not recorded as client departures)."""
        self._closing = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SGLangDouble:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- plumbing -------------------------------------------------------------------------------
    async def _intake(self, request: web.Request) -> Any:
        at = time.monotonic()
        body: Any = None
        if request.body_exists:
            try:
                body = json.loads(await request.read())
            except ValueError:
                body = None
        self.received.append(Received(request.method, request.path, dict(request.headers), body, at))
        return body

    def _take_fault(self, path: str) -> Fault | None:
        for i, (scope, fault) in enumerate(self._faults):
            if scope is None or scope == path:
                del self._faults[i]
                return fault
        return None

    async def _pause(self, job: _Job, delay: float) -> None:
        """Sleep like asyncio.sleep, but an abort wakes it early."""
        if delay <= 0 or job.aborted:
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        handle = loop.call_later(delay, _wake, waiter)
        job.waiter = waiter
        try:
            await waiter
        finally:
            handle.cancel()
            job.waiter = None

    @staticmethod
    async def _hang() -> None:
        await asyncio.get_running_loop().create_future()

    @staticmethod
    def _drop(request: web.Request, job: _Job | None) -> web.Response:
        if job is not None:
            job.dropped = True
        if request.transport is not None:
            request.transport.abort()
        return web.Response()  # never reaches the wire

    def _note_gone(self, job: _Job) -> None:
        if not job.dropped and not self._closing:
            self.cancelled_rids.append(job.rid)

    def _abort(self, job: _Job) -> None:
        job.aborted = True
        if job.waiter is not None:
            _wake(job.waiter)

    def _plan(self, prompt_words: Sequence[str], cap: int | None, exact: bool, stops: Sequence[str]) -> _Plan:
        if self._reply is not None:
            words = self._reply.split()
        else:
            n = cap if exact and cap is not None else DEFAULT_REPLY_TOKENS
            base = ["Echo:", *prompt_words[:6]]
            words = (base + [f"w{i}" for i in range(len(base), n)])[:n]
        finish, matched, limit = "stop", cast(int | str, EOS_ID), len(words)
        for i, word in enumerate(words):
            hit = next((s for s in stops if s in word), None)
            if hit is not None:
                matched, limit = hit, i
                break
        if cap is not None and cap <= limit:
            finish, matched, limit = "length", 0, cap
        return _Plan(self._tokens(words[:limit]), finish, matched if finish == "stop" else None)

    def _tokens(self, words: Sequence[str]) -> list[_Token]:
        out = []
        for i, word in enumerate(words):
            text = word if i == 0 else " " + word
            out.append(_Token(text, _token_id(text), self._vocab.chosen_logprob(i)))
        return out

    def _tool_plan(self, tools: list[Any]) -> _Plan:
        fn = tools[0].get("function", {}) if isinstance(tools[0], dict) else {}
        props = (fn.get("parameters") or {}).get("properties") or {}
        samples = {"integer": 1, "number": 1.5, "boolean": True}
        args = {name: samples.get(str(spec.get("type")), "test") for name, spec in props.items()}
        return _Plan(self._tokens(json.dumps(args).split(" ")), "tool_calls", None, str(fn.get("name", "tool")))

    # -- generation core ------------------------------------------------------------------------
    async def _bad_request(self, request: web.Request, r: _Renderer, stream: bool, message: str,
                           kind: str) -> web.StreamResponse:  # fmt: skip
        """A request SGLang refuses as it reads it: a 400 JSON error when not streamed, an error
        event (then ``[DONE]``) on a 200 stream otherwise."""
        if not stream:
            return r.error(400, message, kind)
        resp = web.StreamResponse(headers=_SSE_HEADERS)
        await resp.prepare(request)
        await resp.write(r.error_event(message) + _DONE)
        await resp.write_eof()
        return resp

    async def _run(self, request: web.Request, rid: str, plan: _Plan, r: _Renderer, stream: bool) -> web.StreamResponse:
        if rid in self._jobs:
            message = f"Duplicate request ID detected: {rid}"
            return await self._bad_request(request, r, stream, message, "BadRequestError")
        if self.refuse_with is not None:
            return r.error(self.refuse_with, QUEUE_FULL, str(self.refuse_with))
        fault = self._take_fault(request.path)
        if fault is Fault.ECHO_ERROR:
            body = self.received[-1].body if self.received else None
            message = ("1 validation error for ChatCompletionRequest\nbody\n  Value error, "
                       f"unsupported input [type=value_error, input_value={body!r}, "
                       "input_type=dict]")
            return await self._bad_request(request, r, stream, message, "Bad Request")
        if fault is Fault.HTTP_500:
            return r.error(500, "Internal server error: injected by SGLangDouble", "InternalServerError")
        if fault is Fault.HTTP_503:
            return r.error(503, QUEUE_FULL, "503")
        if fault is Fault.HTTP_400:
            return r.error(400, "Bad request: injected by SGLangDouble", "BadRequestError")
        if fault is Fault.DROP_BEFORE or (fault is Fault.DROP_MID_STREAM and not stream):
            return self._drop(request, None)
        job = _Job(rid)
        self._jobs[rid] = job
        try:
            if fault is Fault.STALL or (fault is Fault.STALL_MID_STREAM and not stream):
                await self._hang()
            if stream:
                return await self._stream(request, job, plan, r, fault)
            return await self._unary(job, plan, r, fault)
        except asyncio.CancelledError:
            self._note_gone(job)
            raise
        finally:
            if self._jobs.get(rid) is job:
                del self._jobs[rid]

    async def _unary(self, job: _Job, plan: _Plan, r: _Renderer, fault: Fault | None) -> web.StreamResponse:
        if fault is Fault.ERROR_EVENT:
            return r.error(400, "Injected error by SGLangDouble", "BadRequestError")
        if fault is Fault.ABORT_503:
            return r.error(503, QUEUE_FULL, "503")
        n = len(plan.tokens)
        delay = self._slow_delay if fault is Fault.SLOW else self._token_delay
        t0 = time.monotonic()
        await self._pause(job, self._prefill_delay + n * delay)
        done = n
        if job.aborted:
            elapsed = time.monotonic() - t0 - self._prefill_delay
            done = min(n, max(0, int(elapsed / delay))) if delay > 0 else 0
        return web.Response(body=r.body(done, "abort" if job.aborted else plan.finish), content_type="application/json")

    async def _stream(
        self, request: web.Request, job: _Job, plan: _Plan, r: _Renderer, fault: Fault | None
    ) -> web.StreamResponse:
        n = len(plan.tokens)
        mid = fault in _MID_STREAM
        stop_at = min(self._fault_after, n) if mid else n
        delay = self._slow_delay if fault is Fault.SLOW else self._token_delay
        first_delay = self._prefill_delay + (delay if stop_at else 0.0)
        if r.pull_first:
            await self._pause(job, first_delay)
        resp = web.StreamResponse(headers=_SSE_HEADERS)
        await resp.prepare(request)
        try:
            pending = r.opening()
            if not r.pull_first:
                await self._pause(job, first_delay)
            done, final_sent, held = 0, False, 0
            for i in range(stop_at):
                if i:
                    await self._pause(job, delay)
                if job.aborted:
                    break
                last = i == n - 1 and not mid
                held += 1
                if held < self.stream_interval and not last and i + 1 < stop_at:
                    continue  # generated, sent with the next chunk (SGLang's --stream-interval)
                await resp.write(pending + r.token(i, last, held))
                pending, done, final_sent, held = b"", i + 1, last, 0
            if pending:
                await resp.write(pending)
            if not job.aborted:
                if fault is Fault.DROP_MID_STREAM:
                    # aiohttp clients discard buffered chunks once they see the connection break,
                    # so give the reader a moment to consume what was sent before dropping.
                    await asyncio.sleep(self._drop_grace)
                    self._drop(request, job)
                    return resp
                if fault is Fault.STALL_MID_STREAM:
                    await self._hang()
                if fault is Fault.ERROR_EVENT:
                    await resp.write(r.error_event("Injected error by SGLangDouble") + _DONE)
                    await resp.write_eof()
                    return resp
                if fault is Fault.ABORT_503:
                    await resp.write(r.abort_503(done) + _DONE)
                    await resp.write_eof()
                    return resp
                if fault is Fault.DONE_EARLY:
                    await resp.write(_DONE)
                    await resp.write_eof()
                    return resp
                if fault is Fault.MALFORMED:
                    await resp.write(b"data: {not json\n\n")
                    await self._pause(job, 3600.0)
                    return resp
                if fault is Fault.DROP_AFTER_FINISH:
                    await resp.write(r.end(done, plan.finish, final_sent))
                    await asyncio.sleep(self._drop_grace)
                    self._drop(request, job)
                    return resp
            await resp.write(r.end(done, "abort" if job.aborted else plan.finish, final_sent) + _DONE)
            await resp.write_eof()
        except ConnectionResetError:
            self._note_gone(job)
        return resp

    async def _tokenize(self, request: web.Request) -> web.Response:
        """SGLang's ``/v1/tokenize`` (``TokenizeRequest`` -> ``TokenizeResponse``): the double's
        tokens are its words, as it generates them."""
        body = await self._intake(request)
        prompt = body.get("prompt") if isinstance(body, dict) else None
        if not isinstance(prompt, str):
            return _openai_error(400, "prompt must be a string", "BadRequestError")
        ids = [_token_id(w if i == 0 else " " + w) for i, w in enumerate(prompt.split())]
        return web.json_response({"tokens": ids, "count": len(ids), "max_model_len": MAX_MODEL_LEN})

    # -- generation routes ----------------------------------------------------------------------
    async def _openai_intake(self, request: web.Request) -> tuple[Any, web.Response | None]:
        """The request's body, and the error SGLang answers an OpenAI route with before it
        looks at the fields (None when there is none)."""
        body = await self._intake(request)
        return body, self._openai_preamble(request, body)

    def _openai_preamble(self, request: web.Request, body: Any) -> web.Response | None:
        if request.content_type != "application/json":
            return _openai_error(400, "Unsupported Media Type: Only 'application/json' is allowed", "Bad Request")
        if not isinstance(body, dict):
            return _openai_error(400, "Request body must be a JSON object", "Bad Request")
        model = body.get("model")
        if model is not None and not isinstance(model, str):
            return _openai_error(400, "model: Input should be a valid string", "Bad Request")
        if isinstance(model, str) and ":" in model and model != self.model:
            adapter = model.split(":", 1)[1]
            return _openai_error(
                400,
                f"LoRA adapter '{adapter}' was requested, but LoRA is not enabled. Please launch the server "
                "with --enable-lora flag and preload adapters using --lora-paths or /load_lora_adapter endpoint.",
                "BadRequestError",
            )
        for key in ("max_tokens", "max_completion_tokens", "top_logprobs"):
            if not _opt_int(body.get(key)):
                return _openai_error(400, f"{key}: Input should be a valid integer", "Bad Request")
        if body.get("rid") is not None and not isinstance(body.get("rid"), str):
            return _openai_error(400, "rid: Input should be a valid string", "Bad Request")
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, bad = await self._openai_intake(request)
        if bad is not None:
            return bad
        messages = body.get("messages")
        if not isinstance(messages, list):
            return _openai_error(400, "messages: Field required", "Bad Request")
        if not messages or not all(isinstance(m, dict) for m in messages):
            return _openai_error(400, "Messages cannot be empty.", "BadRequestError")
        roles = [m.get("role") for m in messages if m.get("role") != "system"]
        if self.alternating_roles and any(a == b for a, b in zip(roles, roles[1:])):
            return _openai_error(
                400, "Conversation roles must alternate user/assistant/user/assistant/...",
                "BadRequestError")
        last_user = next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1])
        user_words = _words(last_user.get("content"))
        tools = body.get("tools")
        max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
        if isinstance(max_tokens, int) and max_tokens < 0:
            return _openai_error(400, "max_tokens must be non-negative", "BadRequestError")
        if isinstance(tools, list) and tools and "CALL_TOOL" in " ".join(user_words):
            plan = self._tool_plan(tools)
        else:
            plan = self._plan(user_words, max_tokens, max_tokens is not None, _stops(body.get("stop")))
        top_k = int(body.get("top_logprobs") or 0) if body.get("logprobs") else None
        options = body.get("stream_options")
        rid = body.get("rid") or uuid.uuid4().hex
        renderer = _ChatRenderer(
            rid=rid, model=body.get("model") or self.model, plan=plan, vocab=self._vocab, top_k=top_k,
            include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
            prompt_tokens=sum(len(_words(m.get("content"))) for m in messages) + 5,
        )  # fmt: skip
        renderer.reasoning, renderer.reasoning_key = self.reasoning, self.reasoning_key
        n = body.get("n")
        if isinstance(n, int) and n > 1 and not body.get("stream"):
            renderer.other_texts = [self.choice_texts.pop(0) if self.choice_texts else
                                    "".join(t.text for t in plan.tokens) for _ in range(n - 1)]
        renderer.continuous_usage = isinstance(options, dict) and bool(options.get("continuous_usage_stats"))
        return await self._run(request, rid, plan, renderer, bool(body.get("stream")))

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body, bad = await self._openai_intake(request)
        if bad is not None:
            return bad
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if isinstance(prompt, str):
            words, prompt_tokens = prompt.split(), len(prompt.split())
        elif isinstance(prompt, list) and all(isinstance(t, int) for t in prompt):
            words, prompt_tokens = [], len(prompt)
        else:
            return _openai_error(400, "prompt: a single string or token list is supported", "Bad Request")
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and max_tokens <= 0:
            return _openai_error(400, "max_tokens must be positive", "BadRequestError")
        cap = COMPLETIONS_DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens
        plan = self._plan(words, cap, True, _stops(body.get("stop")))
        logprobs = body.get("logprobs")
        options = body.get("stream_options")
        rid = body.get("rid") or uuid.uuid4().hex
        renderer = _CompletionRenderer(
            rid=rid, model=body.get("model") or self.model, plan=plan, vocab=self._vocab,
            top_k=int(logprobs) if isinstance(logprobs, int) else None,
            include_usage=isinstance(options, dict) and bool(options.get("include_usage")),
            prompt_tokens=prompt_tokens,
        )  # fmt: skip
        renderer.continuous_usage = isinstance(options, dict) and bool(options.get("continuous_usage_stats"))
        return await self._run(request, rid, plan, renderer, bool(body.get("stream")))

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await self._intake(request)
        if not isinstance(body, dict):
            return _openai_error(400, "Request body must be a JSON object", "Bad Request")
        params = body.get("sampling_params") or {}
        if not isinstance(params, dict):
            return _json({"error": "invalid type: expected struct SamplingParams"}, 400)
        for key in params:
            if key not in SAMPLING_KEYS:
                expected = ", ".join(f"`{k}`" for k in SAMPLING_KEYS)
                return _json({"error": f"unknown field `{key}`, expected one of {expected}"}, 400)
        if not _opt_int(params.get("max_new_tokens")) or not _opt_int(body.get("top_logprobs_num")):
            return _json({"error": "invalid type: expected an integer"}, 400)
        text, input_ids, rid = body.get("text"), body.get("input_ids"), body.get("rid")
        if isinstance(text, list) or isinstance(rid, list) or (input_ids and isinstance(input_ids[0], list)):
            return _json({"error": {"message": "SGLangDouble does not support batch requests"}}, 400)
        if isinstance(text, str):
            words, prompt_tokens = text.split(), len(text.split())
        elif isinstance(input_ids, list) and input_ids:
            words, prompt_tokens = [], len(input_ids)
        else:
            return _json({"error": {"message": "Either text, input_ids or input_embeds should be provided."}}, 400)
        given = "max_new_tokens" in params
        if isinstance(params.get("max_new_tokens"), int) and params["max_new_tokens"] < 0:
            return _json({"error": {"message": "max_new_tokens must be at least 0, got negative"}}, 400)
        cap = params.get("max_new_tokens") if given else NATIVE_DEFAULT_MAX_NEW_TOKENS
        plan = self._plan(words, cap, given, _stops(params.get("stop")))
        rid = rid if isinstance(rid, str) and rid else uuid.uuid4().hex
        renderer = _NativeRenderer(
            rid=rid, plan=plan, vocab=self._vocab, prompt_tokens=prompt_tokens,
            return_logprob=bool(body.get("return_logprob")), top_k=int(body.get("top_logprobs_num") or 0),
            text_in_logprobs=bool(body.get("return_text_in_logprobs")),
        )  # fmt: skip
        return await self._run(request, rid, plan, renderer, bool(body.get("stream")))

    # -- operational routes ---------------------------------------------------------------------
    async def _health(self, request: web.Request) -> web.Response:
        await self._intake(request)
        return web.Response(status=200 if self.ready else 503)

    async def _model_info(self, request: web.Request) -> web.Response:
        await self._intake(request)
        return _json(
            {"model_path": self.model, "served_model_name": self.model, "tokenizer_path": self.model,
             "is_generation": True, "preferred_sampling_params": None, "weight_version": "default",
             "load_format": "auto", "reasoning_parser": None, "tool_call_parser": None,
             "disaggregation_mode": "null", "has_image_understanding": False, "has_audio_understanding": False,
             "model_type": "llama", "architectures": ["LlamaForCausalLM"]}
        )  # fmt: skip

    async def _server_info(self, request: web.Request) -> web.Response:
        await self._intake(request)
        return _json(
            {"model_path": self.model, "served_model_name": self.model, "host": "127.0.0.1", "port": self.port,
             "context_length": MAX_MODEL_LEN, "incremental_streaming_output": False, "stream_interval": 1,
             "tp_size": 1, "dp_size": 1, "max_total_num_tokens": 65536, "max_req_input_len": MAX_MODEL_LEN - 5,
             "startup_time": self._started, "internal_states": [{"last_gen_throughput": 0.0}],
             "version": VERSION, "frontend": "python"}
        )  # fmt: skip

    def _card(self) -> dict[str, Any]:
        return {"id": self.model, "object": "model", "created": int(self._started), "owned_by": "sglang",
                "root": self.model, "parent": None, "max_model_len": MAX_MODEL_LEN}  # fmt: skip

    async def _models(self, request: web.Request) -> web.Response:
        await self._intake(request)
        return _json({"object": "list", "data": [self._card()]})

    async def _model_card(self, request: web.Request) -> web.Response:
        await self._intake(request)
        name = request.match_info["model"]
        if name == self.model:
            return _json(self._card())
        return _json(
            {"error": {"message": f"The model '{name}' does not exist", "type": "invalid_request_error",
                       "param": "model", "code": "model_not_found"}}, 404,
        )  # fmt: skip

    async def _loads(self, request: web.Request) -> web.Response:
        await self._intake(request)
        load = {"dp_rank": 0, "num_running_reqs": len(self._jobs), "num_waiting_reqs": 0}
        return _json({"timestamp": time.time(), "version": VERSION, "accelerator": "cpu",
                      "num_accelerators": 1, "loads": [load]})  # fmt: skip

    async def _abort_request(self, request: web.Request) -> web.Response:
        body = await self._intake(request)
        body = body if isinstance(body, dict) else {}
        rid = body.get("rid")
        if isinstance(rid, str) and rid:
            self.aborts.append(rid)
            if rid in self._jobs:
                self._abort(self._jobs[rid])
        if body.get("abort_all"):
            for job in list(self._jobs.values()):
                self._abort(job)
        return web.Response(status=200)

    async def _flush_cache(self, request: web.Request) -> web.Response:
        await self._intake(request)
        if self._jobs:
            return web.Response(status=400, text="Cache not flushed: there are running requests.\n")
        return web.Response(text="Cache flushed.\nPlease check backend logs for more details.\n")

    async def _not_found(self, request: web.Request) -> web.Response:
        await self._intake(request)
        return _json({"detail": "Not Found"}, 404)


# -- CLI --------------------------------------------------------------------------------------------
def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        return None
    return cast(Callable[[], asyncio.AbstractEventLoop], uvloop.new_event_loop)


async def _serve(args: argparse.Namespace) -> None:
    double = SGLangDouble(
        model=args.model, reply=args.reply, token_delay=args.token_delay, prefill_delay=args.prefill_delay
    )
    await double.start(args.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {double.url}", flush=True)
    try:
        await stop.wait()
    finally:
        await double.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.lib.sglang_double", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--prefill-delay", type=float, default=0.0)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--reply", default=None)
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve(args))


if __name__ == "__main__":
    main()

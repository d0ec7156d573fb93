"""The loop guard: an answer that repeats itself is stopped, its engine request aborted, and
it ends with finish ``length``; legitimate repetition is left alone; a request without a
budget gets ``LKN_DEFAULT_MAX_TOKENS``."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from lkn.config import load_settings
from lkn.loopguard import LoopGuard, LoopSettings, loop_end
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, make_settings
from tests.waiting import wait_for

pytestmark = pytest.mark.fast

LOOP = "Let us count the apples. " + "So the total is twelve apples in the box. " * 60
CHAT: dict[str, Any] = {"model": "smollm2", "stream": True,
                        "messages": [{"role": "user", "content": "count the apples"}]}


def _stopped_at(text: str, step: int = 5) -> int | None:
    guard = LoopGuard(LoopSettings())
    for start in range(0, len(text), step):
        if guard.feed(text[start:start + step]) is not None:
            return start + step
    return None


LEGITIMATE = {
    "numbered list": "".join(f"{i}. {w} is a fruit people like to eat in summer.\n" for i, w in
                             enumerate("apple pear fig plum kiwi lime lemon grape melon".split(), 1)),
    "csv": "a,b,c\n" + "".join(f"{i},{i * 2},{i * 3}\n" for i in range(300)),
    "code": "".join(f"    self.layer{i} = nn.Linear(128, 128)\n" for i in range(16)),
    "table": "| Nombre | Edad |\n|---|---|\n" + "".join(f"| Persona{i} | {20 + i} |\n"
                                                     for i in range(40)),
    # Verses change, the refrain comes back between them (the same poem said again three
    # times over would be a loop).
    "refrain": "".join(f"{verse}\nOh row, oh row, my heart, row home.\n" for verse in (
        "The wind is high, the sea is wide,\nI walk alone along the tide.",
        "The stars are cold, the night is long,\nI hum the words of my old song.",
        "The gulls are gone, the boats are in,\nthe lamps are lit, the nets are thin.",
        "The dawn is grey, the shore is near,\nthe harbour bell is ringing clear.",
        "And when I land, and when I'm done,\nI'll sleep until the morning sun.")),
}


@pytest.mark.parametrize("name", sorted(LEGITIMATE))
def test_legitimate_repetition_is_not_a_loop(name: str) -> None:
    assert _stopped_at(LEGITIMATE[name]) is None


def test_a_repeated_sentence_is_stopped_within_a_few_repeats() -> None:
    stopped = _stopped_at(LOOP)
    assert stopped is not None
    start, period = len("Let us count the apples. "), len("So the total is twelve apples in the box. ")
    # REPEATS copies make the loop; the check runs every 32 characters.
    settings = LoopSettings()
    assert stopped - start <= settings.repeats * period + settings.check_every + 5


def test_a_counting_loop_is_stopped_and_a_numbered_list_is_not() -> None:
    counting = "Paso 1: 36\n" + "".join(f"Paso {i}: {12 if i % 2 else 7}\n" for i in range(2, 200))
    stopped = _stopped_at(counting)
    assert stopped is not None
    # Sixteen rows that differ only in their numbers (a row is about 12 characters here).
    assert stopped <= 18 * 12 + LoopSettings().check_every
    for step in (1, 3, 11):  # however the text is cut into pieces
        at = _stopped_at(counting, step)
        assert at is not None and at <= 18 * 12 + LoopSettings().check_every + step
    # Without counting, only the budget ends it.
    guard = LoopGuard(LoopSettings(counting_repeats=0))
    assert all(guard.feed(counting[i:i + 5]) is None for i in range(0, len(counting), 5))
    # Fifteen rows of the same shape, computed: a list, not a loop.
    powers = "".join(f"Paso {i}: 2 elevado a {i} es {2 ** i}\n" for i in range(1, 16))
    assert _stopped_at(powers) is None


def test_the_guard_keeps_bounded_memory() -> None:
    guard = LoopGuard(LoopSettings())
    text = " ".join(f"word{i}" for i in range(20000))
    for start in range(0, len(text), 7):
        guard.feed(text[start:start + 7])
        assert sum(map(len, guard._tail)) <= LoopSettings().window + LoopSettings().check_every + 7


async def events_of(response: aiohttp.ClientResponse) -> list[Any]:
    out: list[Any] = []
    async for line in response.content:
        line = line.strip()
        if line.startswith(b"data: "):
            out.append("[DONE]" if line == b"data: [DONE]" else json.loads(line[6:]))
    return out


def text_of(events: list[Any]) -> str:
    """The answer's text in a list of SSE events (``[DONE]`` last)."""
    return "".join(c["delta"].get("content") or "" for e in events[:-1]
                   for c in e.get("choices", []))


async def test_a_looping_stream_is_cut_aborted_and_ends_with_length(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(reply=LOOP, token_delay=0.002) as engine:
        gw = await start_gateway(make_settings(engine.url, grpc_enabled=False))
        body = {**CHAT, "stream_options": {"include_usage": True}}
        async with http.post(gw.v1 + "/chat/completions", json=body) as r:
            assert r.status == 200
            events = await events_of(r)
        assert events[-1] == "[DONE]"
        text = text_of(events)
        finishes = [c.get("finish_reason") for e in events[:-1] for c in e.get("choices", [])
                    if c.get("finish_reason")]
        assert finishes == ["length"]
        # A REST stream gets the engine's chunks as they are: no running usage on them, so
        # no usage chunk for an answer the guard ended (its last chunk never came).
        assert not any(e.get("usage") for e in events[:-1])
        assert len(text.split()) < len(LOOP.split()) // 4
        rid = r.headers["X-Request-Id"]
        await wait_for(lambda: any(a.startswith(rid) for a in engine.aborts) or any(
            c.startswith(rid) for c in engine.cancelled_rids))  # fire and forget: it may
        # reach the engine after the client has read the end of the stream
        async with http.get(gw.url + "/metrics") as m:
            assert 'lkn_loops_stopped_total{model="smollm2"} 1.0' in await m.text()


@pytest.mark.parametrize("path", ["/chat/completions", "/completions"])
async def test_a_looping_non_streamed_answer_is_cut_aborted_and_ends_with_length(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession, path: str
) -> None:
    """A non-streamed answer with a long budget (here the default, 1024 tokens) is read from
    the engine as a stream, so the guard ends it there too."""
    async with SGLangDouble(reply=LOOP, token_delay=0.002) as engine:
        gw = await start_gateway(make_settings(engine.url, grpc_enabled=False))
        body: dict[str, Any] = (
            {**CHAT, "stream": False} if path == "/chat/completions"
            else {"model": "smollm2", "prompt": "count the apples", "stream": False})
        async with http.post(gw.v1 + path, json=body) as r:
            assert r.status == 200
            answer = await r.json()
        choice = answer["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        assert choice["finish_reason"] == "length" and text.startswith("Let us count")
        assert 0 < answer["usage"]["completion_tokens"] < len(LOOP.split())
        assert len(text.split()) < len(LOOP.split()) // 4
        assert answer["object"] == ("chat.completion" if "message" in choice
                                    else "text_completion")
        rid = r.headers["X-Request-Id"]
        await wait_for(lambda: any(a.startswith(rid) for a in engine.aborts) or any(
            c.startswith(rid) for c in engine.cancelled_rids))  # the abort is sent after
        async with http.get(gw.url + "/metrics") as m:
            assert 'lkn_loops_stopped_total{model="smollm2"} 1.0' in await m.text()


async def test_a_non_streamed_answer_with_tools_is_asked_for_as_it_came(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    """Tool calls are not rebuilt from a stream: such a request goes to the engine as sent."""
    async with SGLangDouble() as engine:
        gw = await start_gateway(make_settings(engine.url, grpc_enabled=False))
        tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
        body = {**CHAT, "stream": False, "max_tokens": 4, "tools": tools}
        async with http.post(gw.v1 + "/chat/completions", json=body) as r:
            assert r.status == 200
        plain = {**CHAT, "stream": False, "max_tokens": 300}
        async with http.post(gw.v1 + "/chat/completions", json=plain) as r:
            assert r.status == 200
        sent = [rec.body for rec in engine.requests_to("/v1/chat/completions")]
        assert [b.get("stream") for b in sent] == [False, True]  # type: ignore[union-attr]


@pytest.mark.parametrize("path", ["/chat/completions", "/completions"])
async def test_a_short_non_streamed_answer_is_asked_whole_and_its_loop_cut_once_in(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession, path: str
) -> None:
    """With a budget of LKN_LOOP_STREAM_ABOVE (256) tokens or less, the engine is asked for
    the whole answer (a loop costs it at most that budget); the guard then reads the answer
    as it would have streamed and cuts it at the same place, with finish ``length``."""
    async with SGLangDouble(reply=LOOP) as engine:
        gw = await start_gateway(make_settings(engine.url, grpc_enabled=False))
        body: dict[str, Any] = (
            {**CHAT, "stream": False} if path == "/chat/completions"
            else {"model": "smollm2", "prompt": "count the apples", "stream": False})
        async with http.post(gw.v1 + path, json={**body, "max_tokens": 256}) as r:
            assert r.status == 200
            answer = await r.json()
        sent = engine.requests_to("/v1" + path)[-1].body
        assert isinstance(sent, dict) and not sent.get("stream") and "stream_options" not in sent
        choice = answer["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        assert choice["finish_reason"] == "length" and choice.get("matched_stop") is None
        whole = " ".join(LOOP.split()[:256])  # what the double generated within the budget
        assert text == whole[:loop_end(LoopGuard(LoopSettings()), whole)]
        assert len(text.split()) < 256 // 4
        # The usage is what the engine generated, the cut part included.
        assert answer["usage"]["completion_tokens"] == 256
        async with http.get(gw.url + "/metrics") as m:
            assert 'lkn_loops_stopped_total{model="smollm2"} 1.0' in await m.text()
        # One past the bound, and always with LKN_LOOP_STREAM_ABOVE=0: read as a stream.
        async with http.post(gw.v1 + path, json={**body, "max_tokens": 257}) as r:
            assert r.status == 200
        assert engine.requests_to("/v1" + path)[-1].body.get("stream") is True  # type: ignore[union-attr]
        streamed = await start_gateway(make_settings(
            engine.url, grpc_enabled=False, loop=LoopSettings(stream_above=0)))
        async with http.post(streamed.v1 + path, json={**body, "max_tokens": 8}) as r:
            assert r.status == 200
        assert engine.requests_to("/v1" + path)[-1].body.get("stream") is True  # type: ignore[union-attr]


async def test_without_the_guard_the_loop_runs_to_its_end(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(reply=LOOP) as engine:
        gw = await start_gateway(make_settings(engine.url, grpc_enabled=False, loop_guard=False))
        async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
            events = await events_of(r)
        text = text_of(events)
        assert len(text.split()) == len(LOOP.split())


async def test_a_request_without_a_budget_gets_the_default_and_the_clients_own_wins(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble() as engine:
        gw = await start_gateway(make_settings(engine.url, grpc_enabled=False,
                                               default_max_tokens=333))
        body = {**CHAT, "stream": False}
        async with http.post(gw.v1 + "/chat/completions", json=body) as r:
            assert r.status == 200
        async with http.post(gw.v1 + "/chat/completions", json={**body, "max_tokens": 7}) as r:
            assert r.status == 200
        sent = [rec.body for rec in engine.received if rec.path == "/v1/chat/completions"]
        assert [b["max_tokens"] for b in sent if b] == [333, 7]


async def test_ready_and_the_status_page_show_the_budget_and_the_loops_stopped(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble(reply=LOOP, token_delay=0.001) as engine:
        gw = await start_gateway(make_settings(engine.url, grpc_enabled=False))
        async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
            await events_of(r)
        async with http.get(gw.url + "/ready") as r:
            answers = (await r.json())["answers"]
        # The defaults the README documents, as the gateway runs them.
        assert answers["default_max_tokens"] == 1024
        assert answers["loop_guard"] == {"on": True, "window": 1024, "repeats": 3,
                                         "min_chars": 80, "counting_repeats": 16}
        async with http.get(gw.url + "/lkn/status.json") as r:
            status = await r.json()
        assert status["loop_guard"] is True and status["loops_stopped"] == {"smollm2": 1.0}



async def test_the_default_budget_reaches_the_held_generation_of_the_entropy_strategy(
    start_gateway: GatewayFactory, http: aiohttp.ClientSession
) -> None:
    async with SGLangDouble() as engine:
        gw = await start_gateway(make_settings(engine.url, grpc_enabled=False,
                                               default_max_tokens=333,
                                               decision={"strategy": "entropy"}))
        async with http.post(gw.v1 + "/chat/completions", json=CHAT) as r:
            assert r.status == 200
            await events_of(r)
        sent = [rec.body for rec in engine.received if rec.path == "/v1/chat/completions"]
        assert sent and all(b["max_tokens"] == 333 for b in sent if b)


def test_the_loop_settings_are_read_from_the_environment() -> None:
    settings = load_settings({"LKN_LOOP_WINDOW": "512", "LKN_LOOP_REPEATS": "6",
                              "LKN_LOOP_MIN_CHARS": "200", "LKN_LOOP_COUNTING_REPEATS": "0",
                              "LKN_LOOP_GUARD": "0"}, env_file=None)
    assert settings.loop == LoopSettings(window=512, repeats=6, min_chars=200,
                                         counting_repeats=0)
    assert settings.loop_guard is False


@pytest.mark.parametrize("shortcut", ["_may_repeat", "_searched"])
def test_the_quick_checks_never_change_what_is_found(
    monkeypatch: pytest.MonkeyPatch, shortcut: str
) -> None:
    """``_may_repeat`` (a string search in C) only skips the prefix function where it could
    not find a loop, and ``_searched`` (string searches and comparisons) finds what the
    prefix function finds: with them and without them the guard finds the same loops."""
    import random

    from lkn import loopguard

    rng = random.Random(11)
    pieces = ["ab", "abc ", "a1 ", "x", "12 ", "the cat ", "|a|", "Paso 1: 7\n", "ab(c)", "a",
              "aab", "w7 "]
    texts = []
    for _ in range(1500):
        units = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 3)))
                 * rng.randint(1, 30) for _ in range(rng.randint(1, 6))]
        text = "".join(units)
        if rng.random() < 0.3:  # a slip here and there
            text = "".join(c if rng.random() > 0.01 else rng.choice("abz1") for c in text)
        texts.append(text[-1024:])
    texts += ["".join(rng.choice("ab") for _ in range(rng.randint(1, 300))) for _ in range(200)]
    settings = [LoopSettings(), LoopSettings(min_chars=8, repeats=2),
                LoopSettings(min_chars=41, counting_repeats=3), LoopSettings(min_chars=2, repeats=4),
                LoopSettings(min_chars=9, repeats=4, counting_repeats=5),
                LoopSettings(repeats=6)]
    quick = [loopguard.find_loop(t, s) for t in texts for s in settings]
    off = (lambda tail, min_chars: True) if shortcut == "_may_repeat" else (lambda *_: (False, None))
    monkeypatch.setattr(loopguard, shortcut, off)
    assert [loopguard.find_loop(t, s) for t in texts for s in settings] == quick
    assert sum(loop is not None for loop in quick) > 3000

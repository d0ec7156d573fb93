"""The consistency vote: unanimous, split, tie, malformed samples, an engine failing."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from lkn.decision.consistency import decide, final_answer, samples, vote
from lkn.decision.vote_stream import as_chunks
from lkn.breaker import BreakerState
from lkn.errors import EngineError
from lkn.values import Route, Usage
from scripts.lib.sglang_double import Fault, SGLangDouble
from tests.conftest import CARE_OPEN, GatewayFactory, make_settings

pytestmark = pytest.mark.fast


def answer(*texts: Any, logprobs: list[float] | None = None) -> dict[str, Any]:
    choices: list[Any] = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            choices.append(text)
            continue
        lp = None if logprobs is None else {"content": [{"token": "x", "logprob": logprobs[i]}]}
        choices.append({"index": i, "message": {"role": "assistant", "content": text},
                        "logprobs": lp, "finish_reason": "stop"})
    return {"id": "a", "created": 1, "model": "m", "choices": choices,
            "usage": {"prompt_tokens": 5, "completion_tokens": 30, "total_tokens": 35}}


def test_final_answers_are_read_like_the_grader() -> None:
    assert final_answer("12 - 5 = 7. So 7 apples.") == final_answer("Seven? No: the answer is 7")
    assert final_answer("Paris.\nIt is in France") == "paris."


def test_unanimous() -> None:
    result = vote(samples(answer("The answer is 7.", "7", "12 - 5 = 7"), Route.CHAT))
    assert (result.agreeing, result.usable, result.key) == (3, 3, "7")


def test_split_majority_wins_even_against_a_confident_outlier() -> None:
    parsed = answer("It is 8.", "7", "So 7.", logprobs=[-0.01, -2.0, -1.5])
    result = vote(samples(parsed, Route.CHAT))
    assert result.key == "7" and (result.agreeing, result.usable) == (2, 3)
    assert result.chosen.text == "So 7."  # the likelier of the agreeing two


def test_tie_goes_to_the_highest_mean_logprob_then_the_first() -> None:
    parsed = answer("8", "7", logprobs=[-0.9, -0.2])
    assert vote(samples(parsed, Route.CHAT)).key == "7"
    assert vote(samples(answer("8", "7"), Route.CHAT)).key == "8"  # no logprobs: the first


def test_malformed_samples_are_left_out() -> None:
    parsed = answer("7", "oops", {"index": 2}, {"index": 3, "message": {"content": None}},
                    "   ", "7")  # fmt: skip
    parsed["choices"].append("not a choice")
    usable = samples(parsed, Route.CHAT)
    assert [s.text for s in usable] == ["7", "oops", "7"]
    assert vote(usable).key == "7"
    # Nothing to vote on: the first choice, as the engine sent it (not an engine failure).
    empty = answer({"index": 0, "message": {"role": "assistant", "content": None,
                                            "tool_calls": [{"id": "c"}]}}, "  ")
    out, result = decide(empty, Route.CHAT, "e1", keep_logprobs=False)
    assert out["choices"][0]["message"]["tool_calls"] == [{"id": "c"}]
    assert (result.agreeing, result.usable) == (0, 0)
    with pytest.raises(EngineError, match="no usable answer"):  # no choice at all
        decide({"choices": []}, Route.CHAT, "e1", keep_logprobs=False)


async def test_votes_with_nothing_to_vote_on_never_open_the_breaker(
    start_gateway: GatewayFactory,
) -> None:
    async with SGLangDouble(reply=" ") as empty:  # every answer is empty
        gw = await start_gateway(make_settings(empty.url, client=CARE_OPEN, breaker_failures=2))
        for _ in range(6):
            status, raw, headers = await post(gw.url, BODY)
            assert status == 200, raw
            assert "vote 0/0" in headers["X-LKN-Policy"]
        assert gw.gateway.pool.engines[0].breaker.state is BreakerState.CLOSED
        async with aiohttp.ClientSession() as http:
            async with http.get(gw.url + "/metrics") as r:
                assert "lkn_engine_failures_total{" not in await r.text()


def test_the_client_gets_one_choice_and_events_for_it() -> None:
    parsed = answer("8", "7", "7", logprobs=[-0.1, -0.3, -0.2])
    out, result = decide(parsed, Route.CHAT, "e1", keep_logprobs=False)
    assert len(out["choices"]) == 1 and out["choices"][0]["index"] == 0
    assert out["choices"][0]["logprobs"] is None and out["usage"] == parsed["usage"]
    chunks = as_chunks(out, Route.CHAT, Usage(5, 30, 35))
    events = [json.loads(c.raw) for c in chunks]
    assert events[0]["choices"][0]["delta"]["content"] == "7"
    assert events[1]["choices"][0]["finish_reason"] == "stop"
    assert events[2]["choices"] == [] and events[2]["usage"]["completion_tokens"] == 30
    assert chunks[2].usage_only and result.agreeing == 2


async def post(url: str, body: dict[str, Any], care: str = "consistency:3"
               ) -> tuple[int, bytes, dict[str, str]]:  # fmt: skip
    async with aiohttp.ClientSession() as http:
        async with http.post(url + "/v1/chat/completions", json=body,
                             headers={"X-LKN-Intervention": care}) as r:
            return r.status, await r.read(), dict(r.headers)


BODY = {"model": "smollm2", "messages": [{"role": "user", "content": "2+5?"}], "max_tokens": 6}


async def test_one_engine_request_with_n_k_then_the_vote(
    double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway(make_settings(double.url, client=CARE_OPEN))
    status, raw, headers = await post(gw.url, BODY)
    assert status == 200, raw
    sent = double.requests_to("/v1/chat/completions")[-1].body
    assert (sent["n"], sent["logprobs"], sent.get("stream", False)) == (3, True, False)
    out = json.loads(raw)
    assert len(out["choices"]) == 1 and out["choices"][0]["logprobs"] is None
    assert "vote 3/3" in headers["X-LKN-Policy"]  # the double's n choices all say the same
    assert "max_tokens" not in headers["X-LKN-Policy"]  # the client's 6 was kept
    status, raw, headers = await post(gw.url, {**BODY, "max_tokens": 5000})
    assert status == 200 and headers["X-LKN-Policy"].endswith("max_tokens 256")  # said
    assert double.requests_to("/v1/chat/completions")[-1].body["max_tokens"] == 256
    status, raw, headers = await post(gw.url, {**BODY, "stream": True})
    assert status == 200
    lines = [line for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    text = "".join(json.loads(l[6:])["choices"][0]["delta"].get("content", "")
                   for l in lines[:-1] if json.loads(l[6:])["choices"])  # fmt: skip
    assert text == out["choices"][0]["message"]["content"]
    assert not double.requests_to("/v1/chat/completions")[-1].body.get("stream")


async def test_the_adaptive_vote_stops_when_its_first_two_answers_agree(
    start_gateway: GatewayFactory,
) -> None:
    """consistency:5:adaptive asks for two answers; the other three only when those two
    disagree, in a second request; the vote is then over all five, usage added up."""
    async with SGLangDouble(reply="The answer is 7.") as engine:
        gw = await start_gateway(make_settings(engine.url, client=CARE_OPEN))
        care = "consistency:5:adaptive"
        status, raw, headers = await post(gw.url, BODY, care)
        assert status == 200, raw
        assert [r.body["n"] for r in engine.requests_to("/v1/chat/completions")] == [2]
        assert "vote 2/2 (adaptive: stopped at 2 of 5)" in headers["X-LKN-Policy"]
        assert headers["X-LKN-Intervention"] == care
        one = json.loads(raw)
        assert one["usage"]["completion_tokens"] == 2 * len("The answer is 7.".split())

        # The second answer disagrees: three more are asked for, and 9 wins 3 to 2.
        engine.choice_texts = ["The answer is 9.", "It is 9.", "So 9."]
        status, raw, headers = await post(gw.url, BODY, care)
        assert status == 200, raw
        assert [r.body["n"] for r in engine.requests_to("/v1/chat/completions")] == [2, 2, 3]
        assert "vote 3/5 (adaptive)" in headers["X-LKN-Policy"]
        out = json.loads(raw)
        assert len(out["choices"]) == 1 and final_answer(
            out["choices"][0]["message"]["content"]) == "9"
        assert out["usage"]["completion_tokens"] == (4 + 4) + (4 + 3 + 2)  # both requests
        # Streamed, the same vote, then the agreed answer as events.
        status, raw, headers = await post(gw.url, {**BODY, "stream": True}, care)
        assert status == 200 and "vote 2/2 (adaptive" in headers["X-LKN-Policy"]
        assert raw.rstrip().endswith(b"data: [DONE]")


def test_the_adaptive_vote_is_a_spec_of_its_own() -> None:
    from lkn.care.specs import parse

    assert parse("consistency:adaptive", k=5).name == "consistency:5:adaptive"
    assert parse("consistency:3:adaptive").adaptive and not parse("consistency:3").adaptive
    for bad in ("consistency:3:x", "consistency:adaptive:3", "consistency:1:adaptive"):
        with pytest.raises(ValueError):
            parse(bad)


@pytest.mark.parametrize("fault", [Fault.HTTP_500, Fault.DROP_BEFORE])
@pytest.mark.parametrize("stream", [False, True])
async def test_an_engine_failing_mid_vote_is_a_clean_error(
    fault: Fault, stream: bool, double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway(make_settings(double.url, client=CARE_OPEN))
    double.script(fault)
    status, raw, _ = await post(gw.url, {**BODY, "stream": stream})
    if gw.gateway.pool.engines[0].client.resends:
        # A kept connection dropped before any answer is sent again once on a new one.
        assert fault is Fault.DROP_BEFORE and status == 200 and b'"error"' not in raw
    elif status == 200:  # a keep-alive had started the stream: an error event, then the end
        assert b'"error"' in raw and raw.rstrip().endswith(b"data: [DONE]")
    else:
        assert 500 <= status < 600 and "error" in json.loads(raw)
    status, raw, _ = await post(gw.url, BODY)  # the gateway still answers
    assert status == 200, raw


@pytest.mark.parametrize("key", ["reasoning_content", "reasoning"])
def test_the_streamed_vote_carries_reasoning_and_tool_calls_as_the_engine_sent_them(
    key: str,
) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    message = {"role": "assistant", "content": None, key: "thinking", "tool_calls": [call]}
    parsed = {"id": "x", "model": "m", "created": 1,
              "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
    chunks = as_chunks(parsed, Route.CHAT, None)
    first = json.loads(chunks[0].raw)["choices"][0]["delta"]
    assert first[key] == "thinking" and first["tool_calls"] == [{**call, "index": 0}]
    assert chunks[0].reasoning == "thinking" and chunks[0].tool_call
    assert chunks[0].tool_calls and chunks[0].tool_calls[0].name == "f"
    assert chunks[1].finish_reason == "tool_calls"


async def test_a_votes_wait_is_not_taken_for_the_engines_load(start_gateway: GatewayFactory) -> None:
    """The vote's first token waits for all K answers: the shedder does not see that wait."""
    async with SGLangDouble(token_delay=0.02) as slow:
        gw = await start_gateway(make_settings(slow.url, client=CARE_OPEN))
        shedder = gw.gateway.decider.homeostat.shedder
        status, _, headers = await post(gw.url, {**BODY, "stream": True})
        assert status == 200 and "vote" in headers["X-LKN-Policy"]
        assert len(shedder._ttfts) == 0
        async with aiohttp.ClientSession() as http:  # a plain stream is observed
            async with http.post(gw.url + "/v1/chat/completions",
                                 json={**BODY, "stream": True}) as r:
                await r.read()
        assert len(shedder._ttfts) == 1

"""Cache-aware placement: the prefix record on its own, then through a gateway of two doubles."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from lkn.config import ConfigError, PlacementSettings, load_settings
from lkn.placement import PlacementRecord, Prefix, prefix_of
from lkn.values import JSONObject
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, make_settings

pytestmark = pytest.mark.fast

ON = PlacementSettings(policy="cache_aware")
SYSTEM = {"role": "system", "content": "You are a careful assistant. " * 3}


def chat(*turns: str, system: bool = True) -> JSONObject:
    """A conversation after len(turns) user turns, each answered but the last."""
    messages: list[Any] = [SYSTEM] if system else []
    for i, turn in enumerate(turns):
        messages.append({"role": "user", "content": turn})
        if i < len(turns) - 1:
            messages.append({"role": "assistant", "content": f"answer to {turn}"})
    return {"model": "smollm2", "messages": messages}


# ---- prefixes -------------------------------------------------------------------------


def test_a_later_turn_starts_with_every_block_of_the_earlier_turn() -> None:
    first = prefix_of(chat("hello"), ON)
    third = prefix_of(chat("hello", "and then?", "why?"), ON)
    assert first and len(third.hashes) > len(first.hashes)
    assert third.hashes[: len(first.hashes)] == first.hashes


def test_conversations_share_only_their_common_system_prompt() -> None:
    a = prefix_of(chat("tell me about cats"), ON)
    b = prefix_of(chat("tell me about dogs"), ON)
    assert a.hashes[0] == b.hashes[0]  # the system message
    assert a.hashes[-1] != b.hashes[-1]


def test_text_parts_read_like_the_text_they_join_to() -> None:
    plain = {"messages": [{"role": "user", "content": "ab"}]}
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
                                                       {"type": "text", "text": "b"}]}]}
    assert prefix_of(plain, ON) == prefix_of(parts, ON)


def test_role_is_part_of_the_prefix() -> None:
    user = {"messages": [{"role": "user", "content": "x"}]}
    system = {"messages": [{"role": "system", "content": "x"}]}
    assert prefix_of(user, ON) != prefix_of(system, ON)


def test_completion_prompts_extend_block_by_block() -> None:
    settings = PlacementSettings(policy="cache_aware", block_chars=16)
    short = prefix_of({"prompt": "x" * 40}, settings)
    longer = prefix_of({"prompt": "x" * 40 + "y" * 40}, settings)
    assert len(short.hashes) == 3 and longer.hashes[:2] == short.hashes[:2]
    assert prefix_of({"prompt": ["x" * 40, "other"]}, settings) == short
    assert prefix_of({"prompt": [1, 2, 3]}, settings)


def test_a_huge_prompt_is_read_only_up_to_the_block_budget() -> None:
    settings = PlacementSettings(policy="cache_aware", block_chars=64, max_blocks=8)
    huge = {"messages": [{"role": "user", "content": "z" * 2_000_000}]}
    started = time.perf_counter()
    prefix = prefix_of(huge, settings)
    assert len(prefix.hashes) == 8
    assert time.perf_counter() - started < 0.5
    many = {"messages": [{"role": "user", "content": "m"}] * 100_000}
    assert len(prefix_of(many, settings).hashes) == 8


def test_odd_bodies_give_no_or_some_prefix_without_failing() -> None:
    assert not prefix_of({}, ON)
    assert not prefix_of({"prompt": []}, ON)
    assert prefix_of({"messages": ["not a dict", 3, None]}, ON)
    assert prefix_of({"messages": [{"content": {"nested": [1, 2]}}]}, ON)


def test_placement_off_computes_nothing() -> None:
    assert not PlacementRecord(PlacementSettings()).prefix(chat("hi"))


# ---- the record and its choice --------------------------------------------------------


def test_the_engine_that_saw_the_earlier_turn_is_chosen() -> None:
    record = PlacementRecord(ON)
    record.record("a", prefix_of(chat("cats"), ON))
    record.record("b", prefix_of(chat("dogs"), ON))
    assert record.choose(prefix_of(chat("cats", "more"), ON), [("a", 0), ("b", 0)]) == "a"
    assert record.choose(prefix_of(chat("dogs", "more"), ON), [("a", 0), ("b", 0)]) == "b"


def test_unknown_prefix_leaves_the_choice_to_least_loaded() -> None:
    record = PlacementRecord(ON)
    assert record.choose(prefix_of(chat("cats"), ON), [("a", 0), ("b", 0)]) is None
    assert record.choose(Prefix(()), [("a", 0)]) is None


def test_longest_match_wins_and_ties_go_to_the_less_loaded() -> None:
    record = PlacementRecord(ON)
    record.record("a", prefix_of(chat("cats"), ON))
    record.record("b", prefix_of(chat("cats", "more"), ON))
    third = prefix_of(chat("cats", "more", "again"), ON)
    assert record.choose(third, [("a", 0), ("b", 1)]) == "b"
    shared = prefix_of(chat("new conversation"), ON)  # both hold only the system prompt
    assert record.choose(shared, [("a", 2), ("b", 1)]) == "b"
    assert record.choose(shared, [("a", 0), ("b", 1)]) == "a"
    assert record.choose(shared, [("a", 0), ("b", 0)], fallback="b") == "b"


def test_a_short_shared_system_prompt_alone_leaves_new_conversations_to_least_loaded() -> None:
    record = PlacementRecord(ON)
    long_first = chat("please read this long note " * 20)
    record.record("a", prefix_of(long_first, ON))
    other = prefix_of(chat("another long note to read " * 20), ON)
    assert record.matched("a", other) == 1  # only the system prompt
    assert record.choose(other, [("a", 0), ("b", 0)]) is None
    # ... while its own next turn, whose history "a" holds, stays on "a".
    follow = prefix_of(chat("please read this long note " * 20, "thanks, and?"), ON)
    assert follow.history == len(prefix_of(long_first, ON).hashes)
    assert record.choose(follow, [("a", 0), ("b", 0)]) == "a"


def test_the_load_guard_hands_a_hot_prefix_to_the_least_loaded() -> None:
    record = PlacementRecord(PlacementSettings(policy="cache_aware", max_imbalance=2))
    hot = prefix_of(chat("hot"), ON)
    record.record("a", hot)
    assert record.choose(hot, [("a", 2), ("b", 0)]) == "a"
    assert record.choose(hot, [("a", 3), ("b", 0)]) is None


def test_the_record_is_bounded_and_forgets_least_recent_first() -> None:
    settings = PlacementSettings(policy="cache_aware", record_blocks=10)
    record = PlacementRecord(settings)
    old = prefix_of(chat("old"), settings)
    record.record("a", old)
    for i in range(50):
        record.record("a", prefix_of({"prompt": f"filler {i}"}, settings))
        assert record.size("a") <= 10
    assert record.matched("a", old) == 0
    recent = prefix_of({"prompt": "filler 49"}, settings)
    assert record.matched("a", recent) == 1


def test_an_engine_that_lost_its_cache_is_forgotten() -> None:
    record = PlacementRecord(ON)
    prefix = prefix_of(chat("x"), ON)
    record.record("a", prefix)
    record.forget("a")
    assert record.matched("a", prefix) == 0 and record.size("a") == 0


def test_settings_are_read_and_validated(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    settings = load_settings({"LKN_PLACEMENT": "cache_aware", "LKN_PLACEMENT_MAX_IMBALANCE": "7",
                              "LKN_PLACEMENT_BLOCK_CHARS": "64"}, env_file=empty)
    assert settings.placement.enabled and settings.placement.max_imbalance == 7
    assert settings.placement.block_chars == 64
    assert not load_settings({}, env_file=empty).placement.enabled
    with pytest.raises(ConfigError, match="LKN_PLACEMENT"):
        load_settings({"LKN_PLACEMENT": "sticky"}, env_file=empty)


# ---- through the gateway ----------------------------------------------------------------


@pytest.fixture
async def pair() -> AsyncIterator[tuple[SGLangDouble, SGLangDouble]]:
    async with SGLangDouble() as a, SGLangDouble() as b:
        yield a, b


async def _engines_of(gw_url: str, bodies: list[JSONObject]) -> list[str]:
    engines = []
    async with aiohttp.ClientSession() as http:
        for body in bodies:
            async with http.post(gw_url + "/v1/chat/completions",
                                 json={**body, "max_tokens": 4}) as r:
                assert r.status == 200, await r.text()
                engines.append(r.headers["X-LKN-Engine"])
    return engines


async def test_every_turn_of_a_conversation_goes_to_the_engine_of_its_first_turn(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory
) -> None:
    a, b = pair
    gw = await start_gateway(make_settings(a.url, b.url, grpc_enabled=False,
                                           placement=ON))
    topics = [f"topic {i}" for i in range(6)]
    firsts = await _engines_of(gw.url, [chat(t, system=False) for t in topics])
    # New conversations are spread (least-loaded, round-robin ties) ...
    assert len(set(firsts)) == 2
    seconds = await _engines_of(gw.url, [chat(t, "go on", system=False) for t in topics])
    thirds = await _engines_of(gw.url, [chat(t, "go on", "why", system=False) for t in topics])
    # ... and each one stays where it started.
    assert seconds == firsts and thirds == firsts


async def test_a_shared_system_prompt_spreads_once_both_engines_hold_it(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory
) -> None:
    a, b = pair
    gw = await start_gateway(make_settings(a.url, b.url, grpc_enabled=False, placement=ON))
    pool = gw.gateway.pool
    # Both engines were sent the system prompt (e.g. under concurrent load) ...
    for engine in pool.engines:
        pool.placement.record(engine.name, pool.placement.prefix(chat("warm-up")))
    # ... then new conversations sharing it are spread, and each stays where it started.
    topics = [f"subject {i}" for i in range(6)]
    firsts = await _engines_of(gw.url, [chat(t) for t in topics])
    assert len(set(firsts)) == 2
    assert await _engines_of(gw.url, [chat(t, "more") for t in topics]) == firsts


async def test_least_loaded_placement_ignores_prefixes(
    pair: tuple[SGLangDouble, SGLangDouble], start_gateway: GatewayFactory
) -> None:
    a, b = pair
    gw = await start_gateway(make_settings(a.url, b.url, grpc_enabled=False))
    engines = await _engines_of(gw.url, [chat("same", "again")] * 4)
    assert len(set(engines)) == 2
    assert gw.gateway.pool.placement.size(engines[0]) == 0

"""Interventions: their specs, the engine bodies they make, and the client's fields winning."""

from __future__ import annotations

import pytest

from lkn.care.bodies import CareSettings, apply, model_system_prompt
from lkn.care.specs import NONE, Intervention, parse
from lkn.values import JSONObject

pytestmark = pytest.mark.fast

CARE = CareSettings(instruction="Check twice.", careful_temperature=0.0, careful_top_p=0.9,
                    consistency_k=5, consistency_temperature=0.7, consistency_max_tokens=100)
USER: JSONObject = {"model": "m", "messages": [{"role": "user", "content": "2+2?"}]}


def test_specs_parse_to_one_canonical_name() -> None:
    assert parse("none") is NONE
    assert parse("prompt").name == "prompt:system"
    assert parse("prompt", placement="suffix").name == "prompt:suffix"
    assert parse("PROMPT:suffix + sampling").name == "sampling+prompt:suffix"
    assert parse("consistency").name == "consistency:5"
    assert parse("consistency:3", k=7) == Intervention(consistency=3)
    for bad in ("", "prompt:middle", "sampling+sampling", "magic", "consistency:1",
                "consistency:x", "prompt+", "none+prompt"):
        with pytest.raises(ValueError):
            parse(bad)


def test_prompt_system_keeps_the_models_default_system_prompt() -> None:
    body: JSONObject = {**USER, "model": "SmolLM2-135M-Instruct"}
    out = apply(body, parse("prompt:system"), CARE, "SmolLM2-135M-Instruct")
    default = model_system_prompt("SmolLM2-135M-Instruct")
    assert default and out["messages"][0] == {"role": "system",
                                                "content": f"{default}\n\nCheck twice."}
    assert out["messages"][1:] == USER["messages"]
    # An unknown model: the instruction alone (nothing to keep).
    assert apply(USER, parse("prompt:system"), CARE, "m")["messages"][0] == {
        "role": "system", "content": "Check twice."}
    # A request's own system prompt is extended, not replaced.
    own: JSONObject = {"messages": [{"role": "system", "content": "Be brief."},
                                    {"role": "user", "content": "hi"}]}
    out = apply(own, parse("prompt:system"), CARE, "SmolLM2")
    assert out["messages"][0]["content"] == "Be brief.\n\nCheck twice."
    assert own["messages"][0]["content"] == "Be brief."  # never mutated


def test_prompt_suffix_goes_after_the_conversation() -> None:
    chat: JSONObject = {"messages": [{"role": "user", "content": "first"},
                                     {"role": "assistant", "content": "ok"},
                                     {"role": "user", "content": "2+2?"}]}
    out = apply(chat, parse("prompt:suffix"), CARE)
    assert out["messages"][:2] == chat["messages"][:2]
    assert out["messages"][2] == {"role": "user", "content": "2+2?\n\nCheck twice."}
    assert apply(out, parse("prompt:suffix"), CARE) is out  # added once
    assert apply({"prompt": "Q:"}, parse("prompt:suffix"), CARE) == {"prompt": "Q:\n\nCheck twice."}


def test_sampling_fills_only_what_the_client_left_out() -> None:
    out = apply(USER, parse("sampling"), CARE)
    assert (out["temperature"], out["top_p"]) == (0.0, 0.9)
    own: JSONObject = {**USER, "temperature": 1.2}
    out = apply(own, parse("sampling"), CARE)
    assert out["temperature"] == 1.2 and out["top_p"] == 0.9
    both: JSONObject = {**USER, "temperature": 0.8, "top_p": 0.5}
    assert apply(both, parse("sampling"), CARE) is both
    plain = CareSettings(instruction="x")  # top_p 1.0 is the engine's own default: not sent
    assert "top_p" not in apply(USER, parse("sampling"), plain)


def test_consistency_asks_for_k_samples_within_the_budget() -> None:
    out = apply({**USER, "max_tokens": 500}, parse("consistency:4"), CARE)
    assert (out["n"], out["temperature"], out["max_tokens"]) == (4, 0.7, 100)
    out = apply({**USER, "max_tokens": 50, "temperature": 0.9}, parse("consistency"), CARE)
    assert (out["n"], out["temperature"], out["max_tokens"]) == (5, 0.9, 50)
    # Greedy clients and clients asking for several choices themselves are left alone.
    greedy: JSONObject = {**USER, "temperature": 0}
    assert apply(greedy, parse("consistency"), CARE) is greedy
    many: JSONObject = {**USER, "n": 2}
    assert apply(many, parse("consistency"), CARE) is many


def test_combinations_apply_each_part_once() -> None:
    out = apply(USER, parse("sampling+prompt:suffix"), CARE)
    assert out["temperature"] == 0.0
    assert out["messages"] == [{"role": "user", "content": "2+2?\n\nCheck twice."}]
    assert apply(USER, NONE, CARE) is USER

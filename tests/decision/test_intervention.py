"""The ANALITICO intervention: once, merged into the first system message, body untouched."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lkn.config import DEFAULT_INTERVENTION
from lkn.decision import Decider
from lkn.care.instruction import add_instruction
from lkn.metrics import Metrics
from lkn.config import DecisionSettings
from lkn.values import Decision, JSONObject, Mode

pytestmark = pytest.mark.fast

I = DEFAULT_INTERVENTION


def checked(body: dict[str, Any]) -> JSONObject:
    """add_instruction, asserting the input was not mutated."""
    before = copy.deepcopy(body)
    out = add_instruction(body, I)
    assert body == before
    return out


def test_merges_into_the_existing_system_message() -> None:
    body = {"model": "m", "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hi"},
    ]}
    out = checked(body)
    assert out["messages"] == [
        {"role": "system", "content": "You are terse.\n\n" + I},
        {"role": "user", "content": "hi"},
    ]
    assert out["model"] == "m"


def test_inserts_a_system_message_when_there_is_none() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}]}
    out = checked(body)
    assert out["messages"] == [{"role": "system", "content": I}, {"role": "user", "content": "hi"}]


def test_merges_into_a_developer_message() -> None:
    body = {"messages": [{"role": "developer", "content": "Be kind."},
                         {"role": "user", "content": "hi"}]}
    out = checked(body)
    messages = out["messages"]
    assert isinstance(messages, list) and len(messages) == 2
    assert messages[0] == {"role": "developer", "content": "Be kind.\n\n" + I}


def test_only_the_first_system_message_is_touched() -> None:
    body = {"messages": [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": "A"},
        {"role": "system", "content": "B"},
    ]}
    out = checked(body)
    messages = out["messages"]
    assert isinstance(messages, list)
    assert [m["content"] for m in messages if isinstance(m, dict)] == ["hi", "A\n\n" + I, "B"]
    assert sum(1 for m in messages if isinstance(m, dict) and m["role"] == "system") == 2


def test_never_repeated_when_already_present() -> None:
    body = {"messages": [{"role": "system", "content": "Rules.\n\n" + I},
                         {"role": "user", "content": "hi"}]}
    assert checked(body) is body
    once = checked({"messages": [{"role": "user", "content": "hi"}]})
    assert add_instruction(once, I) is once


def test_list_content_gets_a_text_part() -> None:
    parts = [{"type": "text", "text": "You are terse."}]
    body = {"messages": [{"role": "system", "content": parts}, {"role": "user", "content": "hi"}]}
    out = checked(body)
    messages = out["messages"]
    assert isinstance(messages, list) and isinstance(messages[0], dict)
    assert messages[0]["content"] == [parts[0], {"type": "text", "text": I}]
    assert add_instruction(out, I) is out


def test_empty_system_content_becomes_the_instruction() -> None:
    out = checked({"messages": [{"role": "system", "content": None},
                                {"role": "user", "content": "hi"}]})
    messages = out["messages"]
    assert isinstance(messages, list) and messages[0] == {"role": "system", "content": I}


def test_other_messages_are_shared_not_copied() -> None:
    user = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    body = {"messages": [{"role": "system", "content": "S"}, user], "tools": [{"x": 1}]}
    out = checked(body)
    messages = out["messages"]
    assert isinstance(messages, list)
    assert messages[1] is user and out["tools"] is body["tools"]


def test_completions_prompt_is_prefixed_once() -> None:
    out = checked({"prompt": "Once upon a time", "max_tokens": 5})
    assert out == {"prompt": I + "\n\nOnce upon a time", "max_tokens": 5}
    assert add_instruction(out, I) is out
    assert checked({"prompt": ["a", "b"]})["prompt"] == [I + "\n\na", I + "\n\nb"]


def test_token_id_prompts_are_left_alone() -> None:
    body = {"prompt": [1, 2, 3]}
    assert checked(body) is body


def decider(shadow: bool = False) -> Decider:
    return Decider(DecisionSettings(shadow=shadow, intervention="Check twice."), Metrics())


def test_apply_only_for_applied_analitico() -> None:
    body: JSONObject = {"messages": [{"role": "user", "content": "hi"}]}
    d = decider()
    assert d.apply(Decision(Mode.FLUIDO, "rules"), body) is body
    assert d.apply(Decision(Mode.ANALITICO, "rules", applied=False), body) is body
    out = d.apply(Decision(Mode.ANALITICO, "rules"), body)
    assert out["messages"] == [{"role": "system", "content": "Check twice."},
                               {"role": "user", "content": "hi"}]
    assert body == {"messages": [{"role": "user", "content": "hi"}]}

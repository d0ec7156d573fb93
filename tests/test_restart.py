"""Bodies and answers around a held generation: instruction placement, assembly, stripping."""

from __future__ import annotations

import json

import pytest

from lkn.care.instruction import append_instruction
from lkn.engines.rebuild import assemble, strip_logprobs, token_texts
from lkn.values import Chunk, GenerateRequest, Route

pytestmark = pytest.mark.fast

I = "Check your work."


def test_instruction_goes_after_the_last_user_message_and_nothing_is_mutated() -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"}]
    body = {"messages": messages}
    out = append_instruction(body, I)
    assert out["messages"][:3] == messages[:3]
    assert out["messages"][3] == {"role": "user", "content": "2+2?\n\n" + I}
    assert messages[3]["content"] == "2+2?"  # the client's body is untouched


def test_instruction_after_content_parts_and_without_a_user_message() -> None:
    parts = [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "x"}}]
    out = append_instruction({"messages": [{"role": "user", "content": parts}]}, I)
    assert out["messages"][0]["content"] == [*parts, {"type": "text", "text": I}]
    lone = append_instruction({"messages": [{"role": "system", "content": "S"}]}, I)
    assert lone["messages"][-1] == {"role": "user", "content": I}


def test_instruction_after_a_prompt() -> None:
    assert append_instruction({"prompt": "Q:"}, I)["prompt"] == "Q:\n\n" + I
    assert append_instruction({"prompt": ["Q:"]}, I)["prompt"] == ["Q:\n\n" + I]
    ids = {"prompt": [1, 2, 3]}
    assert append_instruction(ids, I) is ids  # token ids cannot be extended here


def test_strip_logprobs_keeps_everything_else() -> None:
    raw = json.dumps({"id": "x", "choices": [{"index": 0, "delta": {"content": "é"},
                                              "logprobs": {"content": [{"token": "é"}]}}]})
    stripped = json.loads(strip_logprobs(raw.encode()))
    assert stripped == {"id": "x", "choices": [{"index": 0, "delta": {"content": "é"},
                                                "logprobs": None}]}


def test_token_texts_from_chat_and_completions_events() -> None:
    chat = {"choices": [{"logprobs": {"content": [{"token": " a"}, {"token": "b"}]}}]}
    legacy = {"choices": [{"logprobs": {"tokens": [" x", "y"]}}]}
    assert token_texts(chat) == [" a", "b"] and token_texts(legacy) == [" x", "y"]
    assert token_texts({"choices": []}) == []


def chunk(event: dict[str, object]) -> Chunk:
    return Chunk(raw=json.dumps(event).encode())


def test_assemble_completions_with_logprobs() -> None:
    request = GenerateRequest(Route.COMPLETION, {"prompt": "p"}, "r")
    head = {"id": "c1", "created": 5, "model": "m"}
    chunks = [
        chunk({**head, "choices": [{"index": 0, "text": "Hel", "finish_reason": None,
                                    "logprobs": {"tokens": ["Hel"], "token_logprobs": [-0.1],
                                                 "top_logprobs": [{"Hel": -0.1}],
                                                 "text_offset": [0]}}]}),
        chunk({**head, "choices": [{"index": 0, "text": "lo", "finish_reason": "stop",
                                    "logprobs": {"tokens": ["lo"], "token_logprobs": [-0.2],
                                                 "top_logprobs": [{"lo": -0.2}],
                                                 "text_offset": [3]}}]}),
        chunk({**head, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2,
                                                "total_tokens": 3}}),
    ]
    raw, body = assemble(request, chunks, keep_logprobs=True)
    assert json.loads(raw) == body
    choice = body["choices"][0]  # type: ignore[index]
    assert body["object"] == "text_completion" and body["id"] == "c1"
    assert choice["text"] == "Hello" and choice["finish_reason"] == "stop"
    assert choice["logprobs"]["tokens"] == ["Hel", "lo"]
    assert body["usage"]["total_tokens"] == 3  # type: ignore[index]
    _, plain = assemble(request, chunks, keep_logprobs=False)
    assert plain["choices"][0]["logprobs"] is None  # type: ignore[index]


def test_restart_keeps_an_intervention_that_is_not_the_seed_instruction() -> None:
    from lkn.config import DecisionSettings
    from lkn.care.restart_bodies import restart_bodies
    from lkn.values import Decision, Mode

    request = GenerateRequest(Route.CHAT, {"messages": [{"role": "user", "content": "Q"}]}, "r")
    other = {"messages": [{"role": "user", "content": "Q"}], "temperature": 0.7}

    def body_for(decision: Decision) -> dict[str, object]:
        return other if decision.applied else dict(request.body)

    decision = Decision(Mode.ANALITICO, "entropy")
    [(placement, body)] = restart_bodies(request, decision, body_for, DecisionSettings())  # type: ignore[arg-type]
    assert body is other and placement is None


def test_instruction_as_a_message_of_its_own() -> None:
    messages = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    out = append_instruction({"messages": messages}, I, own_message=True)
    assert out["messages"] == [*messages, {"role": "user", "content": I}]
    assert len(messages) == 2  # not mutated
    # A prompt has no messages: the instruction is appended to it either way.
    assert append_instruction({"prompt": "Q:"}, I, own_message=True)["prompt"] == "Q:\n\n" + I


def test_restart_bodies_per_placement() -> None:
    from lkn.config import DecisionSettings
    from lkn.care.instruction import add_instruction
    from lkn.care.restart_bodies import restart_bodies
    from lkn.values import Decision, Mode

    settings = DecisionSettings(restart_placement="message")
    chat = GenerateRequest(Route.CHAT, {"messages": [{"role": "user", "content": "Q"}]}, "r")
    text = GenerateRequest(Route.COMPLETION, {"prompt": "Q"}, "r")

    def seed_for(request: GenerateRequest) -> object:
        def body_for(decision: Decision) -> dict[str, object]:
            body = dict(request.body)
            return add_instruction(body, settings.intervention) if decision.applied else body
        return body_for

    decision = Decision(Mode.ANALITICO, "entropy")
    (m, own), (a, appended) = restart_bodies(chat, decision, seed_for(chat), settings)  # type: ignore[arg-type]
    assert (m, a) == ("message", "after")
    assert own["messages"] == [{"role": "user", "content": "Q"},
                               {"role": "user", "content": settings.intervention}]
    assert appended["messages"] == [{"role": "user",
                                     "content": "Q\n\n" + settings.intervention}]
    after = DecisionSettings(restart_placement="after")
    assert restart_bodies(chat, decision, seed_for(chat), after) == [("after", appended)]  # type: ignore[arg-type]
    [(placed, prompt)] = restart_bodies(text, decision, seed_for(text), settings)  # type: ignore[arg-type]
    assert prompt["prompt"] == "Q\n\n" + settings.intervention and placed == "after"
    answer = DecisionSettings()
    assert answer.restart_placement == "answer"  # the default
    (placed, first), *rest = restart_bodies(chat, decision, seed_for(chat), answer)  # type: ignore[arg-type]
    assert placed == "answer" and first["messages"] == [{"role": "user", "content": "Q"},
                                 {"role": "assistant", "content": answer.restart_prefix}]
    assert first["continue_final_message"] is True
    assert rest == [("message", own), ("after", appended)]
    # The client continues its own answer: the instruction goes before that answer.
    own_answer = GenerateRequest(Route.CHAT, {"messages": [
        {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A:"}],
        "continue_final_message": True}, "r")
    for placement in (settings, answer):
        [(placed, body)] = restart_bodies(own_answer, decision, seed_for(own_answer), placement)  # type: ignore[arg-type]
        assert placed == "after" and body["messages"] == [{"role": "user", "content": "Q\n\n" + settings.intervention},
                                    {"role": "assistant", "content": "A:"}]
    system = DecisionSettings(restart_placement="system")
    [(placed, seed)] = restart_bodies(chat, decision, seed_for(chat), system)  # type: ignore[arg-type]
    assert seed == seed_for(chat)(decision) and placed is None  # type: ignore[operator]


def test_a_rebuilt_answer_reads_plain_chunks_without_parsing_them_again() -> None:
    """Only the head, the finish, the last usage and reasoning are parsed again; the text of
    the chunks between comes from the chunks themselves, and the answer is the same as from
    the events (a chunk whose raw event says otherwise shows which was read)."""
    from lkn.engines.wire import parse_chunk

    def event(i: int, **delta: object) -> bytes:
        return json.dumps({"id": "a1", "object": "chat.completion.chunk", "created": 7,
                           "model": "m", "usage": {"prompt_tokens": 3, "completion_tokens": i,
                                                   "total_tokens": 3 + i},
                           "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                        "finish_reason": None}]}).encode()

    chunks = [parse_chunk(event(0, role="assistant", content="Hel"), "e"),
              parse_chunk(event(1, content="lo"), "e"), parse_chunk(event(2, content="!"), "e")]
    request = GenerateRequest(Route.CHAT, {"model": "m"}, "rid")
    raw, body = assemble(request, chunks, keep_logprobs=False)
    assert body["choices"][0]["message"]["content"] == "Hello!"  # type: ignore[index]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert body["id"] == "a1" and json.loads(raw) == body

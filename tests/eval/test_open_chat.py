"""``lkn eval`` on open chat: prompts sent as Open WebUI sends them, graded for degeneration,
and ``--choose`` refusing an intervention that loops more than FLUIDO."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lkn.eval.arms import parse_arm
from lkn.eval.choose import choose_policy
from lkn.eval.client import request_body
from lkn.eval.degeneration import judge
from lkn.eval.items import OPEN_FILE, load_items
from lkn.eval.report import open_cells, open_table
from lkn.eval.runner import Record
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import GatewayFactory, make_settings
from tests.eval.test_harness import _lkn

pytestmark = pytest.mark.fast

LOOP = ("The cat walked home through the rain and the wind, and the night was long and dark. "
        * 12)


def pieces(text: str) -> list[str]:
    return [text[i:i + 4] for i in range(0, len(text), 4)]


def test_the_open_set_covers_every_kind_in_both_languages() -> None:
    items = load_items(OPEN_FILE)
    kinds = {(i.answer["kind"], i.lang) for i in items}
    assert {k for k, _ in kinds} == {"explanation", "list", "story", "howto", "steps"}
    assert all((k, lang) in kinds for k, _ in kinds for lang in ("en", "es"))
    assert all(i.open for i in items) and len({i.id for i in items}) == len(items)
    # Sent as Open WebUI sends a chat: no max_tokens, no sampling field in its shape.
    body = request_body(items[0], parse_arm("gateway@webui"), "m", 64)
    assert "max_tokens" not in body and "temperature" not in body


def test_degeneration_is_judged_by_the_guards_rule() -> None:
    assert judge(pieces(LOOP), "length").looped
    assert not judge(pieces(LOOP), "length").to_budget
    normal = "Boil water, pour it on the tea, wait three minutes, then add milk if you like."
    assert judge(pieces(normal), "stop") == judge(pieces(normal), "stop").__class__(False, False)
    assert judge(pieces(normal * 2), "length").to_budget  # cut by the budget, not a loop


def record(item: str, arm: str, correct: bool, looped: bool | None = None) -> Record:
    return Record(item=item, category="open_story" if looped is not None else "arithmetic",
                  lang="en", arm=arm, correct=correct, signals=[], text="", finish_reason="stop",
                  completion_tokens=10, ttft_s=0.1, latency_s=1.0, error=None, headers={},
                  looped=looped, to_budget=False if looped is not None else None)


def test_choose_rejects_an_intervention_that_loops_more_than_fluido() -> None:
    records: list[Record] = []
    for n in range(30):  # sampling wins 20 short answers, loses none
        records += [record(f"q{n}", "fluido@webui", n >= 20), record(f"q{n}", "sampling@webui", True)]
    for n in range(6):  # and loops on 3 open prompts where FLUIDO loops on none
        records += [record(f"o{n}", "fluido@webui", True, looped=False),
                    record(f"o{n}", "sampling@webui", n >= 3, looped=n < 3)]
    policy = choose_policy(records, model="m", alpha=0.05, source="test")
    assert policy["rules"] == []
    why = [r for r in policy["rejected"] if r["signals"] == ["all"]][0]
    assert "loops on more open chat prompts" in why["why"]
    assert why["evidence"]["open_chat"]["loops"] == 3
    assert why["evidence"]["open_chat"]["baseline_loops"] == 0
    assert why["evidence"]["n"] == 30  # accuracy is judged on the short items only
    assert policy["measured"]["open_chat_prompts"] == 6
    # Without the loops it is kept.
    calm = [r if not r.open else record(r.item, r.arm, True, looped=False) for r in records]
    kept = choose_policy(calm, model="m", alpha=0.05, source="test")
    assert {r["intervention"] for r in kept["rules"]} == {"sampling"}  # "none" and "all"
    cells = open_cells(records, ["fluido@webui", "sampling@webui"])
    assert [(c.arm, c.loops, c.n) for c in cells] == [("fluido@webui", 0, 6),
                                                      ("sampling@webui", 3, 6)]
    assert cells[1].vs_shape is not None and cells[1].vs_shape[:2] == (3, 0)
    assert "50.0%" in open_table(cells)


async def test_the_command_grades_open_chat_through_the_gateway(
    tmp_path: Path, start_gateway: GatewayFactory,
) -> None:
    async with SGLangDouble(reply=LOOP) as double:
        gw = await start_gateway(make_settings(double.url, grpc_enabled=False,
                                               default_max_tokens=200))
        code, out, err = await _lkn("--gateway", gw.url, "--category", "open_steps",
                                    "--limit", "2", "--arms", "fluido@webui",
                                    "--out", str(tmp_path))
        assert code == 0, err
        sent = [r.body for r in double.requests_to("/v1/chat/completions")]
    # No max_tokens from the client: the gateway's default budget reached the engine.
    assert sent and all(b["max_tokens"] == 200 for b in sent)  # type: ignore[index]
    data = json.loads(sorted(tmp_path.glob("eval-*.json"))[0].read_text())
    records = data["records"]
    assert records and all(r["looped"] is True and r["to_budget"] is False for r in records)
    assert all(r["finish_reason"] == "length" and 0 < r["completion_tokens"] < 200
               for r in records)  # the guard ended them, before the budget
    assert "open chat" in out and "100.0%" in out
    assert {c["arm"]: c["loops"] for c in data["open_cells"]} == {"fluido@greedy": 2,
                                                                  "fluido@webui": 2}

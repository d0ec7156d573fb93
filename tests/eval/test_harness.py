"""``lkn eval`` end to end against a gateway in front of the SGLang test double."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from lkn.eval.arms import parse_arm, parse_arms
from lkn.eval.choose import as_measured
from lkn.eval.client import request_body
from lkn.eval.items import load_items, parse_slice, sliced
from lkn.eval.runner import Record
from scripts.lib.sglang_double import SGLangDouble
from tests.conftest import CARE_OPEN, GatewayFactory, make_settings
from tests.livestack import ROOT

pytestmark = pytest.mark.fast


def test_arms_send_what_their_client_would() -> None:
    item = load_items()[0]
    webui = request_body(item, parse_arm("gateway@webui"), "m", 64)
    assert not {"temperature", "top_p", "top_k"} & set(webui)  # exactly Open WebUI's shape
    assert request_body(item, parse_arm("fluido"), "m", 64)["temperature"] == 0.0
    assert parse_arm("fluido").headers == {"X-LKN-Mode": "fluido"}
    assert parse_arm("sampling+prompt@webui").headers == {
        "X-LKN-Intervention": "sampling+prompt"}
    for bad in ("@greedy", "fluido@hot", "fluido,fluido@greedy"):
        with pytest.raises(ValueError):
            parse_arms(bad)


def test_slices_are_stratified() -> None:
    items = load_items()
    quick = load_items(quick=True)
    assert [i.id for i in sliced(items, *parse_slice("0/8"))] == [i.id for i in quick]
    assert {i.category for i in sliced(items, 4, 8)} == {i.category for i in items}
    for bad in ("8/8", "x", "1/0"):
        with pytest.raises(ValueError):
            parse_slice(bad)


async def _lkn(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LKN_ENV_FILE": str(ROOT / "config" / ".env.example")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lkn", "eval", *args, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=240)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_the_command_runs_reports_and_chooses(
    tmp_path: Path, double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway(make_settings(double.url, client=CARE_OPEN))
    code, out, err = await _lkn("--gateway", gw.url, "--limit", "4", "--category", "arithmetic",
                                "--category", "chat", "--arms", "fluido@webui,sampling@webui",
                                "--out", str(tmp_path), "--choose")  # fmt: skip
    assert code == 0, err
    assert "fluido@greedy" in out and "accuracy per category" in out  # the baseline is added
    assert "12/12" in err  # the progress bar's last line
    saved = sorted(tmp_path.glob("eval-*.json"))
    assert saved and (tmp_path / "policy.json").is_file()
    data = json.loads(saved[0].read_text())
    assert data["items"] == 4 and len(data["records"]) == 12
    assert {r["arm"] for r in data["records"]} == {"fluido@greedy", "fluido@webui", "sampling@webui"}
    sent = [r.body for r in double.requests_to("/v1/chat/completions")]
    webui = [b for b in sent if "temperature" not in b]
    assert len(webui) == 4  # fluido@webui: no sampling field reached the engine
    policy = json.loads((tmp_path / "policy.json").read_text())
    assert policy["format"] == "lkn-policy/1" and "rejected" in policy
    # Reports can be rebuilt from saved runs without a gateway.
    code, out, err = await _lkn("--from", str(saved[0]), "--out", str(tmp_path / "again"))
    assert code == 0, err
    assert "fluido@webui" in out


async def test_arms_that_name_care_need_a_gateway_that_lets_clients_name_it(
    tmp_path: Path, double: SGLangDouble, start_gateway: GatewayFactory,
) -> None:
    gw = await start_gateway(make_settings(double.url))
    code, _, err = await _lkn("--gateway", gw.url, "--limit", "2", "--arms", "sampling@webui",
                              "--out", str(tmp_path))
    assert code == 1
    assert "LKN_CLIENT_INTERVENTIONS=on" in err and "sampling@webui" in err
    assert not list(tmp_path.glob("eval-*.json"))


async def test_the_shipped_policy_is_reproduced_from_the_saved_runs(tmp_path: Path) -> None:
    shipped = json.loads((ROOT / "lkn" / "care" / "policies"
                          / "smollm2-135m-instruct.json").read_text())
    # The runs it names, in its order (a later run's record of the same item and arm wins).
    runs = [ROOT / "docs" / "eval-runs" / name
            for name in shipped["measured"]["source"].split(" + ")]
    assert len(runs) == 3 and all(run.is_file() for run in runs)
    out_policy = tmp_path / "policy.json"
    # Chosen before the form signal: its runs' own signals, compositions among the rest.
    assert "apart" not in shipped
    code, out, err = await _lkn(*[a for run in runs for a in ("--from", str(run))], "--choose",
                                "--saved-signals", "--out", str(tmp_path),
                                "--policy-out", str(out_policy))
    assert code == 0, err
    made = json.loads(out_policy.read_text())
    assert made["rules"] == shipped["rules"] and made["rejected"] == shipped["rejected"]
    assert made["measured"]["items"] == shipped["measured"]["items"] == 454
    assert made["measured"]["open_chat_prompts"] == 48
    # Greedy for all won the short answers but loops on open chat: rejected for it.
    rejected = [r for r in shipped["rejected"] if r["signals"] == ["all"]
                and r["intervention"] == "sampling" and r["shape"] == "webui"]
    assert rejected and "loops on more open chat prompts" in rejected[0]["why"]
    # The full run's gateway@webui arm (the earlier policy) got sampling: it counts as such.
    assert "sampling@webui" in out and "gateway@webui" not in out and "open chat" in out


def test_a_gateway_arm_is_named_after_the_intervention_it_got() -> None:
    def rec(item: str, arm: str, got: str) -> Record:
        return Record(item=item, category="c", lang="en", arm=arm, correct=True, signals=[],
                      text="", finish_reason="stop", completion_tokens=1, ttft_s=None,
                      latency_s=1.0, error=None, headers={"X-LKN-Intervention": got})

    trial = as_measured([rec("a", "gateway@webui", "sampling"), rec("b", "gateway@webui", "none"),
                         rec("a", "fluido@webui", "none")])
    # The request shed to FLUIDO stays in the arm, as the gateway's measured behaviour.
    assert [r.arm for r in trial] == ["sampling@webui", "sampling@webui", "fluido@webui"]
    mixed = as_measured([rec("a", "gateway@greedy", "sampling"),
                         rec("b", "gateway@greedy", "prompt:system")])
    assert {r.arm for r in mixed} == {"gateway@greedy"}


async def test_a_gateway_that_is_not_there_is_a_clear_error(tmp_path: Path) -> None:
    code, _, err = await _lkn("--gateway", "http://127.0.0.1:9", "--limit", "1",
                              "--out", str(tmp_path))
    assert code == 1 and "not ready" in err


def test_each_rule_signal_is_measured_against_fluido_in_the_same_shape() -> None:
    from lkn.eval.report import signal_cells, signal_table

    def rec(item: str, arm: str, correct: bool, signals: list[str]) -> Record:
        return Record(item=item, category="c", lang="en", arm=arm, correct=correct,
                      signals=signals, text="", finish_reason="stop", completion_tokens=1,
                      ttft_s=None, latency_s=1.0, error=None, headers={})

    arms = ["fluido@greedy", "fluido@webui", "sampling@webui"]
    answers = {  # item: (signals, correct per arm)
        "a": (["math"], (True, False, True)),
        "b": (["math", "word_problem"], (False, True, False)),
        "c": ([], (True, False, True)),
    }
    records = [rec(i, arm, ok, sig) for i, (sig, oks) in answers.items()
               for arm, ok in zip(arms, oks)]
    by = {(c.group, c.arm): c for c in signal_cells(records, arms)}
    assert {g for g, _ in by} == {"math", "word_problem", "none"}
    math = by[("math", "sampling@webui")]
    assert (math.n, math.correct, math.vs_shape[:2]) == (2, 1, (1, 1))  # type: ignore[index]
    assert by[("none", "sampling@webui")].vs_shape[:2] == (1, 0)  # type: ignore[index]
    text = signal_table(list(by.values()), arms)
    assert "math" in text and "50% +1/-1" in text and "none" in text


async def test_a_report_can_leave_out_the_items_a_policy_was_chosen_on(tmp_path: Path) -> None:
    quick, sliced_run = sorted((ROOT / "docs" / "eval-runs" / "earlier").glob("smollm2-135m-*.json"))
    both = ("--from", str(quick), "--from", str(sliced_run))
    code, _, err = await _lkn(*both, "--held-out-from", str(quick), "--out", str(tmp_path))
    assert code == 0, err
    [saved] = tmp_path.glob("eval-saved-*.json")
    data = json.loads(saved.read_text())
    quick_items = {r["item"] for r in json.loads(quick.read_text())["records"]}
    kept = {r["item"] for r in data["records"]}
    assert kept and not kept & quick_items
    assert data["held_out_from"] == [quick.name]
    # Nothing is left when every item was seen: a clear message, not an empty table.
    code, _, err = await _lkn(*both, "--held-out-from", str(quick),
                              "--held-out-from", str(sliced_run), "--out", str(tmp_path / "x"))
    assert code == 2 and "outside --held-out-from" in err

"""The policy file: rules by signal and entropy range, validation, start-up errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lkn.config import ConfigError, load_settings
from lkn.care.chooser import CareChooser
from lkn.care.policy import PolicyError, load_policy, parse_policy
from lkn.values import Decision, Mode

pytestmark = pytest.mark.fast

SHIPPED = Path(__file__).resolve().parents[2] / "lkn" / "care" / "policies"

POLICY = {
    "format": "lkn-policy/1", "name": "t", "model": "m", "significance": 0.05,
    "rules": [
        {"signals": ["math"], "intervention": "sampling+prompt:suffix", "why": "maths"},
        {"signals": ["high_entropy"], "entropy": [0.7, 1.0], "intervention": "consistency:3"},
        {"signals": ["*"], "intervention": "sampling"},
    ],
    "rejected": [{"signals": ["none"], "intervention": "prompt:system"}],
}


def test_rules_match_in_order() -> None:
    policy = parse_policy(POLICY, "t.json")
    assert policy.choose(("math", "code"), None)[0].name == "sampling+prompt:suffix"
    assert policy.choose(("high_entropy",), 0.8)[0].name == "consistency:3"
    # Out of the entropy range: the next rule that matches.
    assert policy.choose(("high_entropy",), 0.5)[0].name == "sampling"
    chosen, why = policy.choose((), None)
    assert chosen.name == "none" and "no rule" in why
    assert policy.describe()["rejected"] == POLICY["rejected"]


def test_the_chooser_sets_the_mode_from_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(POLICY))
    empty = tmp_path / "empty.env"
    empty.write_text("")
    settings = load_settings({"LKN_POLICY": str(path)}, env_file=empty).decision
    chooser = CareChooser(settings)
    flagged = chooser.with_care(Decision(Mode.FLUIDO, "rules", signals=("math",)))
    assert (flagged.mode, flagged.intervention) == (Mode.ANALITICO, "sampling+prompt:suffix")
    assert flagged.policy and "t#0" in flagged.policy
    plain = chooser.with_care(Decision(Mode.ANALITICO, "rules", signals=()))
    assert (plain.mode, plain.intervention) == (Mode.FLUIDO, "none")
    forced = chooser.with_care(Decision(Mode.ANALITICO, "override", signals=("override",)))
    assert forced.intervention == "prompt:system"  # the analitico override: LKN_INTERVENTION
    shed = chooser.with_care(Decision(Mode.FLUIDO, "entropy", signals=("high_entropy",),
                                      score=0.9, shed="cheaper"))
    # Shed to the cheaper level: one answer with the instruction after the conversation.
    assert (shed.mode, shed.intervention) == (Mode.ANALITICO, "prompt:suffix")
    assert "shed: consistency:3 -> prompt:suffix" in (shed.policy or "")
    assert chooser.state()["policy"]["name"] == "t"  # type: ignore[index]
    # Measured on model "m": a request for another model gets no policy rule.
    other = chooser.with_care(Decision(Mode.FLUIDO, "rules", signals=("math",)), "qwen2.5-3b")
    assert other.intervention == "none"
    same = chooser.with_care(Decision(Mode.FLUIDO, "rules", signals=("math",)), "m+analitico")
    assert same.intervention == "sampling+prompt:suffix"


@pytest.mark.parametrize("change, message", [
    ({"format": "other"}, "'format'"),
    ({"rules": {}}, "'rules' must be a list"),
    ({"rules": [{"signals": [], "intervention": "sampling"}]}, "'signals'"),
    ({"rules": [{"signals": ["math"], "intervention": "magic"}]}, "rules[0]"),
    ({"rules": [{"signals": ["math"], "intervention": "sampling", "entropy": [0.9, 0.1]}]},
     "'entropy'"),
    ({"significance": 2}, "'significance'"),
])
def test_invalid_policies_say_what_is_wrong(change: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_policy({**POLICY, **change}, "bad.json")


def test_start_up_errors_name_the_setting(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for path, text in ((broken, "not valid JSON"), (tmp_path / "missing.json", "cannot read")):
        with pytest.raises(ConfigError, match=f"LKN_POLICY=.*{text}"):
            load_settings({"LKN_POLICY": str(path)}, env_file=empty)
    assert load_settings({"LKN_POLICY": "none"}, env_file=empty).decision.policy is None
    with pytest.raises(ConfigError, match="LKN_INTERVENTION"):
        load_settings({"LKN_INTERVENTION": "prompt:middle"}, env_file=empty)


def test_a_rule_for_all_requests_matches_with_and_without_signals() -> None:
    policy = parse_policy({**POLICY, "rules": [{"signals": ["all"], "intervention": "sampling"}]},
                          "all.json")
    assert policy.choose((), None)[0].name == "sampling"
    assert policy.choose(("math",), 0.9)[0].name == "sampling"


def test_auto_applies_the_shipped_policy_to_its_model_only(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    settings = load_settings({}, env_file=empty).decision  # LKN_POLICY defaults to auto
    assert settings.policy_setting == "auto" and settings.policy is None
    assert {p.model for p in settings.shipped_policies} >= {"SmolLM2-135M-Instruct"}
    chooser = CareChooser(settings)
    shipped = chooser.policy_for("SmolLM2-135M-Instruct")
    assert shipped is not None and shipped.source.endswith("smollm2-135m-instruct.json")
    for model in ("Qwen2.5-3B-Instruct-AWQ", "smollm2", None):
        assert chooser.policy_for(model) is None
        plain = chooser.with_care(Decision(Mode.FLUIDO, "rules", signals=()), model)
        assert (plain.mode, plain.intervention) == (Mode.FLUIDO, "none")
    # What the shipped policy says for its model is what the gateway does with a request.
    expected, _ = shipped.choose((), None)
    got = chooser.with_care(Decision(Mode.FLUIDO, "rules", signals=()), "SmolLM2-135M-Instruct")
    assert got.intervention == expected.name
    beyond_default = expected.active and expected != shipped.default
    assert got.mode is (Mode.ANALITICO if beyond_default else Mode.FLUIDO)
    state = chooser.state()
    assert state["setting"] == "auto" and "LKN_POLICY=auto" in str(state["why"])
    assert [p["name"] for p in state["policies"]] == [  # type: ignore[attr-defined]
        p.name for p in settings.shipped_policies]
    off = CareChooser(load_settings({"LKN_POLICY": "none"}, env_file=empty).decision)
    assert off.policy_for("SmolLM2-135M-Instruct") is None
    assert off.state()["policy"] is None and "LKN_POLICY=none" in str(off.state()["why"])
    path = tmp_path / "p.json"
    path.write_text(json.dumps(POLICY))
    own = CareChooser(load_settings({"LKN_POLICY": str(path)}, env_file=empty).decision)
    assert own.policy_for("m") is not None and own.policy_for("qwen2.5-3b") is None
    assert own.state()["setting"] == str(path) and str(path) in str(own.state()["why"])


def test_shipped_policies_are_valid() -> None:
    for path in sorted(SHIPPED.glob("*.json")):
        policy = load_policy(path)
        assert policy.rules or policy.summary.get("rejected"), path


DEFAULT_TREATMENT = {**POLICY, "rules": [
    {"signals": ["math"], "intervention": "sampling+prompt:suffix", "why": "measured"},
    {"signals": ["all"], "intervention": "sampling", "why": "measured"},
]}


def _chooser(tmp_path: Path, policy: dict[str, object]) -> CareChooser:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(policy))
    empty = tmp_path / "empty.env"
    empty.write_text("")
    return CareChooser(load_settings({"LKN_POLICY": str(path)}, env_file=empty).decision)


def test_the_models_default_treatment_is_not_care(tmp_path: Path) -> None:
    chooser = _chooser(tmp_path, DEFAULT_TREATMENT)
    assert chooser.policy is not None and chooser.policy.default.name == "sampling"
    # The rule for every request is what the model gets by default: FLUIDO, named.
    for verdict in (Mode.FLUIDO, Mode.ANALITICO):
        plain = chooser.with_care(Decision(verdict, "rules", signals=("steps",)))
        assert (plain.mode, plain.intervention) == (Mode.FLUIDO, "sampling")
        assert "default treatment" in (plain.policy or "")
    # More than the default is care.
    flagged = chooser.with_care(Decision(Mode.FLUIDO, "rules", signals=("math",)))
    assert (flagged.mode, flagged.intervention) == (Mode.ANALITICO, "sampling+prompt:suffix")
    # Care shed to FLUIDO keeps the free default treatment, not the care.
    for signals in (("math",), ()):
        shed = chooser.with_care(Decision(Mode.FLUIDO, "rules", signals=signals, shed="fluido"))
        assert (shed.mode, shed.intervention) == (Mode.FLUIDO, "sampling")
        assert "care shed" in (shed.policy or "")


def test_a_default_treatment_that_costs_is_shed(tmp_path: Path) -> None:
    costly = {**POLICY, "rules": [{"signals": ["all"], "intervention": "prompt:system",
                                   "why": "measured"}]}
    chooser = _chooser(tmp_path, costly)
    plain = chooser.with_care(Decision(Mode.FLUIDO, "rules", signals=()))
    assert (plain.mode, plain.intervention) == (Mode.FLUIDO, "prompt:system")
    shed = chooser.with_care(Decision(Mode.FLUIDO, "rules", signals=(), shed="fluido"))
    assert (shed.mode, shed.intervention) == (Mode.FLUIDO, "none")
    # A policy with no rule for every request has no default treatment.
    assert _chooser(tmp_path, POLICY).policy.default.name == "none"  # type: ignore[union-attr]

"""Which intervention a decision gets, and the engine body that carries it.

A strategy's verdict gets the measured policy's intervention (``LKN_POLICY``: by rule
signals and entropy range; the mode is ANALITICO exactly when the policy names one beyond
the model's default treatment, the rule for every request, which stays FLUIDO). Under
``LKN_POLICY=auto`` a request gets the shipped policy measured on the model it names (the
name the engine serves in ``/v1/models``, which the gateway lists and routes by); without a
policy for it, ANALITICO gets ``LKN_INTERVENTION``. The ``analitico`` override gets
``LKN_INTERVENTION``; an intervention the request names (``X-LKN-Intervention``) is used as
it is, shed like the rest (:mod:`.asked`). When the homeostat sheds care to the cheaper level (:func:`cheaper`), voting is
dropped and the instruction goes after the conversation, where the engine reuses the prefill
of the prompt it already did.
"""

from __future__ import annotations

from dataclasses import replace

from lkn.config import DecisionSettings
from lkn.care import asked, bodies
from lkn.care.asked import cheaper
from lkn.care.bodies import CareSettings
from lkn.care.specs import NONE, Intervention, parse
from lkn.care.policy import Policy
from lkn.values import Decision, JSONObject, Mode


class CareChooser:
    def __init__(self, settings: DecisionSettings) -> None:
        self._settings = settings
        self.policy = settings.policy
        self.shipped = settings.shipped_policies
        self.setting = settings.policy_setting
        self.care = CareSettings(
            settings.intervention, settings.prompt_placement, settings.careful_temperature,
            settings.careful_top_p, settings.consistency_k, settings.consistency_temperature,
            settings.consistency_max_tokens)  # fmt: skip
        self.default = self.parse(settings.care_intervention)

    def parse(self, spec: str) -> Intervention:
        """An intervention spec with this gateway's placement and k; raises ``ValueError``."""
        return parse(spec, self._settings.prompt_placement, self._settings.consistency_k)

    def requested(self, spec: str, shed: str | None = None) -> Decision:
        """The decision for a request that names its intervention (shed: :mod:`.asked`)."""
        return asked.decision(self.parse(spec), shed)

    def weight(self, body: JSONObject, spec: str | None) -> int:
        """Admission slots a request holds before its decision (:func:`.asked.weight`)."""
        try:
            vote = self.parse(spec).consistency if spec is not None else 0
        except ValueError:
            vote = 0
        return asked.weight(body, vote)

    def without_vote(self, decision: Decision, why: str) -> Decision:
        """``decision`` with its vote shed (:func:`.asked.without_vote`)."""
        return asked.without_vote(decision, self.parse(decision.intervention), why)

    def with_care(self, decision: Decision, model: str | None = None) -> Decision:
        """``decision`` with its intervention (and, under a policy, the mode it implies).

        A policy measured on another model than the request's is not applied.
        """
        if not decision.gets_care:
            return decision
        policy = self.policy_for(model)
        if decision.shed == "fluido":
            return self._default_only(decision, policy)
        if policy is None or decision.client_chose:
            if decision.mode is Mode.FLUIDO:
                return decision
            chosen, why = self._shed(decision, self.default, "LKN_INTERVENTION")
            return replace(decision, intervention=chosen.name, policy=why)
        chosen, why = self._shed(decision, *policy.choose(decision.signals, decision.score))
        if chosen.active and chosen == policy.default:  # what every request gets: not care
            return replace(decision, mode=Mode.FLUIDO, intervention=chosen.name,
                           policy=f"{why} (the model's default treatment)")
        return replace(decision, mode=Mode.ANALITICO if chosen.active else Mode.FLUIDO,
                       intervention=chosen.name, policy=why)

    @staticmethod
    def _default_only(decision: Decision, policy: Policy | None) -> Decision:
        """Care shed to FLUIDO keeps the model's default treatment if it is only sampling."""
        default = NONE if policy is None else policy.default
        if policy is None or cheaper(default) != default or default.prompt is not None:
            return decision
        why = f"{policy.name}: the model's default treatment (care shed)"
        return replace(decision, intervention=default.name, policy=why)

    @staticmethod
    def _shed(decision: Decision, chosen: Intervention, why: str) -> tuple[Intervention, str]:
        if decision.shed != "cheaper" or cheaper(chosen) == chosen:
            return chosen, why
        shed = cheaper(chosen)
        return shed, f"{why} (shed: {chosen.name} -> {shed.name})"

    def policy_for(self, model: str | None) -> Policy | None:
        """The policy for a request naming ``model``: one measured on that model, or none.

        A policy file (``LKN_POLICY=path``) applies to requests naming its model (every model
        when it names none) and to requests naming no model; a shipped one (``auto``) only to
        requests naming its model.
        """
        name = (model or "").lower()
        if self.policy is not None:
            measured = (self.policy.model or "").lower()
            return self.policy if not (measured and name and measured not in name) else None
        for policy in self.shipped:
            if policy.model and name and policy.model.lower() in name:
                return policy
        return None

    def apply(self, decision: Decision, body: JSONObject) -> JSONObject:
        """The engine body for ``decision`` (``body`` itself when nothing changes).

        An ANALITICO decision made without a chooser (intervention ``none``) gets the default.
        """
        if not decision.applied:
            return body
        if decision.intervention != NONE.name:
            intervention = self.parse(decision.intervention)
        elif decision.mode is Mode.ANALITICO:
            intervention = self.default
        else:
            return body
        model = body.get("model")
        return bodies.apply(body, intervention, self.care, model if isinstance(model, str) else None)

    def votes(self, decision: Decision, body: JSONObject) -> bool:
        """Whether ``decision`` asks for the consistency vote on this request body."""
        if not decision.applied or "consistency" not in decision.intervention:
            return False
        k = self.parse(decision.intervention).consistency
        return body.get("n") in (None, 1) and self.apply(decision, body).get("n") == k

    def state(self) -> dict[str, object]:
        """Which policy is in force and why (``/ready`` and the probe show it)."""
        measured = ("each rule applies an intervention only where it beat FLUIDO in the "
                    "paired test (lkn eval --choose)")
        if self.policy is not None:
            return {"setting": self.setting, "policy": self.policy.describe(),
                    "analitico_override_gets": self.default.name,
                    "why": f"the measured policy in {self.policy.source}: {measured}"}
        if self.shipped:
            return {"setting": self.setting,
                    "policies": [p.describe() for p in self.shipped],
                    "analitico_override_gets": self.default.name,
                    "why": ("LKN_POLICY=auto: the policies shipped with L-kn, each only for "
                            f"requests naming its model; {measured}. Other models: "
                            "ANALITICO requests get LKN_INTERVENTION")}
        return {"setting": self.setting, "policy": None, "analitico_gets": self.default.name,
                "why": f"no measured policy (LKN_POLICY={self.setting or 'none'}): ANALITICO "
                       "requests get LKN_INTERVENTION"}

"""The models the pool serves, and the mode variants a client may pick by name
(``model+fluido``, ``model+analitico``) when it cannot send headers (Open WebUI)."""

from __future__ import annotations

from collections.abc import Iterable

from lkn.engines import EngineClient
from lkn.values import GenerateRequest, ModelCard

VARIANT_SUFFIXES = {"+fluido": "fluido", "+analitico": "analitico"}


class Models:
    """Names as clients see them, mapped to what the engines serve."""

    def __init__(self, variants: bool) -> None:
        self.variants = variants

    def cards(self, clients: Iterable[EngineClient]) -> list[ModelCard]:
        """The engines' models, plus one variant per mode when enabled."""
        cards: list[ModelCard] = []
        seen: set[str] = set()
        for client in clients:
            model = client.model_id
            if model is None or model in seen:
                continue
            seen.add(model)
            names = [model] + ([model + s for s in VARIANT_SUFFIXES] if self.variants else [])
            cards.extend(ModelCard(id=name, root=model, engine_model=model,
                                   max_model_len=client.max_model_len) for name in names)
        return cards

    def engine_model(self, request: GenerateRequest) -> str | None:
        """The model the engines must serve for ``request`` (its name without a mode
        variant); None when the request names none."""
        model = request.body.get("model")
        if not isinstance(model, str) or not model:
            return None
        if self.variants:
            for suffix in VARIANT_SUFFIXES:
                if model.endswith(suffix):
                    return model[: -len(suffix)]
        return model

    def mode_override(self, request: GenerateRequest) -> str | None:
        """The mode the client asked for: its override, else the one its model name picks."""
        if request.mode_override is not None:
            return request.mode_override
        model = request.body.get("model")
        if isinstance(model, str):
            for suffix, mode in VARIANT_SUFFIXES.items():
                if model.endswith(suffix):
                    return mode
        return None

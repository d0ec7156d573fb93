"""The gateway's configuration: typed settings (:mod:`.settings`), how values are read
(:mod:`.parse`) and the one place that reads them (:func:`load_settings`, :mod:`.load`)."""

from lkn.config.load import load_settings
from lkn.config.parse import parse_engines
from lkn.config.settings import (
    DEFAULT_INTERVENTION,
    REASONING_FIELDS,
    STRATEGIES,
    ClientLimits,
    ConfigError,
    DecisionSettings,
    EngineSpec,
    HomeostatSettings,
    PlacementSettings,
    Settings,
)

__all__ = [
    "DEFAULT_INTERVENTION", "REASONING_FIELDS", "STRATEGIES", "ClientLimits", "ConfigError",
    "DecisionSettings", "EngineSpec", "HomeostatSettings", "PlacementSettings", "Settings",
    "load_settings", "parse_engines",
]

"""Settings: the only place that reads the environment and the env file.

Values come from ``LKN_*`` / ``ENGINE_*`` variables, then from the env file
(``LKN_ENV_FILE``, default ``config/.env``), then from the defaults in
:mod:`lkn.config.settings`. The process environment wins over the file. A bad value raises
:class:`ConfigError` naming the variable; an ``LKN_*`` name no setting reads is refused.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lkn.care import specs
from lkn.care.policy import Policy, PolicyError, load_policy
from lkn.config.parse import Reader, parse_engines, parse_hosts, parse_origins, read_env_file
from lkn.config.settings import (
    DEFAULT_ENV_FILE,
    DEFAULT_POLICY,
    MODES,
    PLACEMENT_POLICIES,
    REASONING_FIELDS,
    SCORE_FEATURES,
    SHIPPED_POLICIES,
    STRATEGIES,
    TOOL_NAMES,
    ClientLimits,
    ConfigError,
    D,
    DD,
    DecisionSettings,
    H,
    HomeostatSettings,
    P,
    PlacementSettings,
    Settings,
)
from lkn.loopguard import LoopSettings



def _homeostat_settings(r: Reader) -> HomeostatSettings:
    target = r.raw("LKN_TARGET_RATE")
    return HomeostatSettings(
        target_rate=None if target is None or target.lower() == "off"
        else r.number("LKN_TARGET_RATE", 0.0, 0.0, 1.0),
        window=r.integer("LKN_HOMEOSTAT_WINDOW", H.window, minimum=10, maximum=100_000),
        min_samples=r.integer("LKN_HOMEOSTAT_MIN_SAMPLES", H.min_samples, minimum=1),
        band=r.number("LKN_HOMEOSTAT_BAND", H.band, 0.0, 1.0),
        dwell=r.number("LKN_HOMEOSTAT_DWELL", H.dwell),
        integral_gain=r.number("LKN_HOMEOSTAT_GAIN", H.integral_gain, 0.0, 0.1),
        shed=r.flag("LKN_SHED", H.shed),
        queue_set_point=r.number("LKN_SHED_QUEUE", H.queue_set_point),
        ttft_set_point=r.number("LKN_SHED_TTFT", H.ttft_set_point),
        ttft_horizon=r.number("LKN_SHED_TTFT_HORIZON", H.ttft_horizon, minimum=0.1),
        in_flight_limit=r.integer("LKN_SHED_IN_FLIGHT", H.in_flight_limit),
        restore=r.number("LKN_SHED_RESTORE", H.restore, 0.0, 1.0),
    )


def _care_settings(r: Reader) -> dict[str, Any]:
    """The interventions' settings and the policy files, loaded and validated here, at
    start-up (a malformed one is a ConfigError naming LKN_POLICY)."""
    placement = r.choice("LKN_PROMPT_PLACEMENT", "system", specs.PLACEMENTS)
    k = r.integer("LKN_CONSISTENCY_K", 5, minimum=2, maximum=16)
    care = r.get("LKN_INTERVENTION", "prompt",
                 lambda raw: specs.parse(raw, placement, k).name,
                 "an intervention such as none, prompt, prompt:suffix, sampling, "
                 "sampling+prompt or consistency")
    policy_path = r.text("LKN_POLICY", DEFAULT_POLICY)
    policy = None
    shipped: tuple[Policy, ...] = ()
    try:
        if policy_path.lower() == "auto":
            shipped = tuple(load_policy(path, placement, k)
                            for path in sorted(SHIPPED_POLICIES.glob("*.json")))
        elif policy_path.lower() not in ("", "none", "off"):
            policy = load_policy(Path(policy_path), placement, k)
    except PolicyError as exc:
        raise ConfigError(f"LKN_POLICY={policy_path!r} is invalid: {exc}") from None
    return {
        "care_intervention": care,
        "prompt_placement": placement,
        "careful_temperature": r.number("LKN_CAREFUL_TEMPERATURE", 0.0, 0.0, 2.0),
        "careful_top_p": r.number("LKN_CAREFUL_TOP_P", 1.0, 0.01, 1.0),
        "consistency_k": k,
        "consistency_temperature": r.number("LKN_CONSISTENCY_TEMPERATURE", 0.7, 0.0, 2.0),
        "consistency_max_tokens": r.integer("LKN_CONSISTENCY_MAX_TOKENS", 256, minimum=1),
        "policy": policy,
        "shipped_policies": shipped,
        "policy_setting": policy_path,
    }



def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = None
) -> Settings:
    """Read and validate all settings.

    ``environ`` defaults to ``os.environ``; ``env_file`` to ``LKN_ENV_FILE`` or ``config/.env``
    (a missing default file is fine; a missing file named explicitly is an error).
    """
    env = _environment(dict(os.environ if environ is None else environ), env_file)
    r = Reader(env)
    settings = Settings(
        **_network(r, env), **_engines(r), **_timeouts(r), **_streams(r),
        client=_client_limits(r), decision=_decision(r), loop_guard=r.flag(
            "LKN_LOOP_GUARD", D.loop_guard), loop=_loop(r), placement=_placement(r),
    )
    refuse_unknown_names(env, r.asked)
    return settings


def _environment(env: dict[str, str], env_file: str | Path | None) -> dict[str, str]:
    """The process environment over the env file's lines."""
    explicit = env_file is not None or "LKN_ENV_FILE" in env
    path = Path(env_file if env_file is not None else env.get("LKN_ENV_FILE", DEFAULT_ENV_FILE))
    if path.is_file():
        merged = read_env_file(path)
        merged.update(env)
        return merged
    if explicit:
        raise ConfigError(f"LKN_ENV_FILE={str(path)!r} is invalid: the file does not exist")
    return env


def _decision(r: Reader) -> DecisionSettings:
    return DecisionSettings(
        mode=r.choice("LKN_MODE", DD.mode, MODES),
        strategy=r.choice("LKN_DECISION_STRATEGY", DD.strategy, STRATEGIES),
        entropy_threshold=r.number("LKN_ENTROPY_THRESHOLD", DD.entropy_threshold, 0.0, 1.0),
        probe_top_k=r.integer("LKN_PROBE_TOP_K", DD.probe_top_k, minimum=1, maximum=20),
        probe_tokens=r.integer("LKN_PROBE_TOKENS", DD.probe_tokens, minimum=1, maximum=16),
        probe_timeout=r.number("LKN_PROBE_TIMEOUT", DD.probe_timeout, minimum=0.01),
        max_tokens_fluido=r.integer("LKN_MAX_TOKENS_FLUIDO", DD.max_tokens_fluido, minimum=1),
        intervention=r.text("LKN_INTERVENTION_PROMPT", DD.intervention),
        shadow=r.flag("LKN_SHADOW", DD.shadow),
        score_feature=r.choice("LKN_SCORE_FEATURE", DD.score_feature, SCORE_FEATURES),
        score_normalise=r.flag("LKN_SCORE_NORMALISE", DD.score_normalise),
        homeostat=_homeostat_settings(r),
        speculative=r.flag("LKN_SPECULATIVE", DD.speculative),
        restart_placement=r.choice("LKN_RESTART_PLACEMENT", DD.restart_placement,
                                   ("message", "after", "answer", "system")),
        restart_prefix=r.text("LKN_RESTART_PREFIX", DD.restart_prefix),
        **_care_settings(r),
    )


def _network(r: Reader, env: Mapping[str, str]) -> dict[str, Any]:
    """Where it listens, who may call it, and how much it takes."""
    return {
        "host": r.text("LKN_HOST", D.host),
        "port": r.integer("LKN_PORT", D.port, maximum=65535),
        # Its own default (loopback), never LKN_HOST's: binding REST to every interface for
        # a proxy must not expose plaintext gRPC too.
        "grpc_host": r.text("LKN_GRPC_HOST", D.grpc_host),
        "grpc_port": r.integer("LKN_GRPC_PORT", D.grpc_port, maximum=65535),
        "grpc_enabled": r.flag("LKN_GRPC_ENABLED", D.grpc_enabled),
        "api_key": _api_key(r, env),
        "max_body_bytes": r.integer("LKN_MAX_BODY_BYTES", D.max_body_bytes, minimum=1024),
        "max_concurrency": r.integer("LKN_MAX_CONCURRENCY", D.max_concurrency, minimum=1),
        "max_connections": r.integer("LKN_MAX_CONNECTIONS", D.max_connections, minimum=1),
        "metrics_public": r.flag("LKN_METRICS_PUBLIC", D.metrics_public),
        "allowed_hosts": r.get("LKN_ALLOWED_HOSTS", D.allowed_hosts, parse_hosts,
                               "a comma-separated list of host names or addresses, or *"),
        "cors_origins": r.get("LKN_CORS_ORIGINS", D.cors_origins, parse_origins,
                              "a comma-separated list of origins like https://chat.example.org, "
                              "or *"),
        "grpc_max_streams": r.integer("LKN_GRPC_MAX_STREAMS", D.grpc_max_streams, minimum=1),
        "workers": r.integer("LKN_WORKERS", D.workers, minimum=1, maximum=64),
        "log_level": r.choice("LKN_LOG_LEVEL", D.log_level.lower(),
                              ("debug", "info", "warning", "error")).upper(),
        "log_prompts": r.flag("LKN_LOG_PROMPTS", D.log_prompts),
    }


def _engines(r: Reader) -> dict[str, Any]:
    """The engines, how they are named and reached, and how failures are judged."""
    return {
        "engines": r.get("LKN_ENGINE_URLS", D.engines, parse_engines,
                         "a comma-separated list of http(s) URLs, each optionally prefixed "
                         "'openai='"),
        "engine_model": r.text("ENGINE_MODEL", D.engine_model),
        "engine_mem_fraction": r.number("ENGINE_MEM_FRACTION", D.engine_mem_fraction, 0.0, 1.0),
        "engine_api_key": r.raw("ENGINE_API_KEY"),
        "engine_header": r.choice("LKN_ENGINE_HEADER", D.engine_header, ("name", "address")),
        "engine_connections": r.integer("LKN_ENGINE_CONNECTIONS", D.engine_connections,
                                        minimum=1),
        "breaker_failures": r.integer("LKN_BREAKER_FAILURES", D.breaker_failures, minimum=1),
        "breaker_reset": r.number("LKN_BREAKER_RESET", D.breaker_reset, minimum=0.01),
        "breaker_trial_wait": r.number("LKN_BREAKER_TRIAL_WAIT", D.breaker_trial_wait),
        "ready_failures": r.integer("LKN_READY_FAILURES", D.ready_failures, minimum=1),
        "ready_successes": r.integer("LKN_READY_SUCCESSES", D.ready_successes, minimum=1),
        "resume": r.flag("LKN_RESUME", D.resume),
        "resume_attempts": r.integer("LKN_RESUME_ATTEMPTS", D.resume_attempts, minimum=1,
                                     maximum=16),
        "model_variants": r.flag("LKN_MODEL_VARIANTS", D.model_variants),
    }


def _timeouts(r: Reader) -> dict[str, Any]:
    return {
        "connect_timeout": r.number("LKN_CONNECT_TIMEOUT", D.connect_timeout, minimum=0.01),
        "read_timeout": r.number("LKN_READ_TIMEOUT", D.read_timeout, minimum=0.01),
        "request_timeout": r.number("LKN_REQUEST_TIMEOUT", D.request_timeout),
        "health_interval": r.number("LKN_HEALTH_INTERVAL", D.health_interval, minimum=0.05),
        "health_timeout": r.number("LKN_HEALTH_TIMEOUT", D.health_timeout, minimum=0.05),
        "shutdown_grace": r.number("LKN_SHUTDOWN_GRACE", D.shutdown_grace),
        "header_timeout": r.number("LKN_HEADER_TIMEOUT", D.header_timeout, minimum=0.1),
        "body_timeout": r.number("LKN_BODY_TIMEOUT", D.body_timeout, minimum=0.1),
        "idle_timeout": r.number("LKN_IDLE_TIMEOUT", D.idle_timeout, minimum=0.1),
        "grpc_max_connection_age": r.number("LKN_GRPC_MAX_CONNECTION_AGE",
                                            D.grpc_max_connection_age, minimum=1.0),
        "grpc_connection_age_grace": r.number("LKN_GRPC_CONNECTION_AGE_GRACE",
                                              D.grpc_connection_age_grace),
    }


def _streams(r: Reader) -> dict[str, Any]:
    """What answers look like to clients: keep-alives, reasoning, the note, the budget."""
    return {
        "sse_keepalive": r.number("LKN_SSE_KEEPALIVE", D.sse_keepalive),
        "reasoning_field": r.choice("LKN_REASONING_FIELD", D.reasoning_field,
                                    REASONING_FIELDS),
        "decision_note": r.flag("LKN_DECISION_NOTE", D.decision_note),
        "default_max_tokens": r.integer("LKN_DEFAULT_MAX_TOKENS", D.default_max_tokens,
                                        maximum=1 << 20),
    }


def _loop(r: Reader) -> LoopSettings:
    return LoopSettings(
        window=r.integer("LKN_LOOP_WINDOW", D.loop.window, minimum=64, maximum=65536),
        repeats=r.integer("LKN_LOOP_REPEATS", D.loop.repeats, minimum=2, maximum=64),
        min_chars=r.integer("LKN_LOOP_MIN_CHARS", D.loop.min_chars, minimum=8, maximum=65536),
        counting_repeats=r.integer("LKN_LOOP_COUNTING_REPEATS", D.loop.counting_repeats,
                                   minimum=0, maximum=1024),
        stream_above=r.integer("LKN_LOOP_STREAM_ABOVE", D.loop.stream_above, minimum=0,
                               maximum=1 << 20),
    )


def _placement(r: Reader) -> PlacementSettings:
    return PlacementSettings(
        policy=r.choice("LKN_PLACEMENT", P.policy, PLACEMENT_POLICIES),
        block_chars=r.integer("LKN_PLACEMENT_BLOCK_CHARS", P.block_chars, minimum=16,
                              maximum=65536),
        max_blocks=r.integer("LKN_PLACEMENT_MAX_BLOCKS", P.max_blocks, minimum=1, maximum=4096),
        record_blocks=r.integer("LKN_PLACEMENT_RECORD_BLOCKS", P.record_blocks, minimum=1,
                                maximum=1 << 22),
        max_imbalance=r.integer("LKN_PLACEMENT_MAX_IMBALANCE", P.max_imbalance),
        min_match=r.number("LKN_PLACEMENT_MIN_MATCH", P.min_match, 0.0, 1.0),
    )


def _client_limits(r: Reader) -> ClientLimits:
    C = ClientLimits
    return ClientLimits(
        interventions=r.flag("LKN_CLIENT_INTERVENTIONS", C.interventions),
        care_key=r.raw("LKN_CARE_API_KEY"),  # empty: no such key (care stays closed)
        max_tokens=r.integer("LKN_MAX_TOKENS_LIMIT", C.max_tokens, minimum=1, maximum=1 << 20),
        max_n=r.integer("LKN_MAX_N", C.max_n, minimum=1, maximum=16),
        max_min_tokens=r.integer("LKN_MAX_MIN_TOKENS", C.max_min_tokens, maximum=1 << 20),
        max_vote=r.integer("LKN_MAX_VOTE", C.max_vote, minimum=2, maximum=16),
    )


def _api_key(r: Reader, env: Mapping[str, str]) -> str | None:
    key = r.raw("LKN_API_KEY")
    if key is None and "LKN_API_KEY" in env:
        raise ConfigError("LKN_API_KEY is set but empty: set a key, or remove the line to run "
                          "without one")
    return key


def refuse_unknown_names(env: Mapping[str, str], asked: set[str]) -> None:
    """Fail closed: an ``LKN_*`` name that neither a setting nor a script reads (in the
    environment or the env file) is a ConfigError naming the closest known name, so that a
    misspelt ``LKN_APIKEY`` cannot start a gateway without its key."""
    known = sorted(asked | TOOL_NAMES)
    problems = []
    for name in sorted(env):
        if not name.startswith("LKN_") or name in asked or name in TOOL_NAMES:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f": did you mean {close[0]}?" if close else ""
        problems.append(f"{name} is not a setting of L-kn{hint}")
    if problems:
        raise ConfigError("; ".join(problems) + " (remove or correct the variable)")

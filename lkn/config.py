"""Settings: the only place that reads the environment and the env file.

Values come from ``LKN_*`` / ``ENGINE_*`` variables, then from the env file
(``LKN_ENV_FILE``, default ``config/.env``), then from the defaults below. The process
environment wins over the file. A bad value raises :class:`ConfigError` naming the variable.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from lkn.loopguard import LoopSettings

if TYPE_CHECKING:
    from lkn.decision.policy import Policy

DEFAULT_ENV_FILE = "config/.env"
#: ``auto``: the policies shipped with L-kn (``lkn/decision/policies``, written by
#: ``lkn eval --choose``), each applied only to requests for the model it was measured on.
DEFAULT_POLICY = "auto"
SHIPPED_POLICIES = Path(__file__).parent / "decision" / "policies"
DEFAULT_INTERVENTION = (
    "Think carefully, verify your assumptions, and reason step-by-step before answering."
)
#: The instruction in the answer's own voice, for ``LKN_RESTART_PLACEMENT=answer``.
DEFAULT_ANSWER_PREFIX = (
    "Let me think carefully, verify my assumptions, and reason step by step."
)

MODES = ("homeostatic", "passthrough")
STRATEGIES = ("rules", "entropy", "hybrid")
SCORE_FEATURES = ("max", "mean", "margin", "tail")
ENGINE_KINDS = ("sglang", "openai")
#: Where reasoning text goes in a chat delta / message (see lkn/engines/wire.py).
REASONING_FIELDS = ("reasoning_content", "reasoning", "both")

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class EngineSpec:
    """One engine of the pool: its base URL and which wire protocol it speaks."""

    url: str
    kind: str = "sglang"

    @property
    def name(self) -> str:
        parts = urlsplit(self.url)
        return parts.netloc or self.url


@dataclass(frozen=True)
class HomeostatSettings:
    #: ANALITICO rate to hold (0..1); None leaves the configured threshold alone.
    target_rate: float | None = None
    #: Decisions the quantile is taken over: as many as the ranks are taken among (the
    #: normaliser's 500), so that the threshold does not chase the ranks' own fluctuations.
    window: int = 500
    min_samples: int = 30
    band: float = 0.02
    dwell: float = 2.0
    #: Integral gain on (set point - realised rate), per decision; 0 disables it.
    integral_gain: float = 0.003
    #: Load shedding on or off.
    shed: bool = True
    #: Waiting requests per engine that count as saturation.
    queue_set_point: float = 8.0
    #: Time to first token (seconds, 90th percentile) that counts as saturation.
    ttft_set_point: float = 5.0
    ttft_horizon: float = 10.0
    #: Requests in flight at which everything is FLUIDO (0: the gateway's concurrency limit).
    in_flight_limit: int = 0
    #: A shed level is left when pressure stays below this fraction of the set points.
    restore: float = 0.6


@dataclass(frozen=True)
class DecisionSettings:
    mode: str = "homeostatic"
    strategy: str = "rules"
    entropy_threshold: float = 0.6
    probe_top_k: int = 10
    probe_tokens: int = 1
    probe_timeout: float = 2.0
    max_tokens_fluido: int = 150
    intervention: str = DEFAULT_INTERVENTION
    shadow: bool = False
    #: Which feature of the answer tokens' logprobs is the score (see lkn.decision.entropy).
    score_feature: str = "max"
    #: Rank scores within their language and rules category before the threshold.
    score_normalise: bool = True
    homeostat: HomeostatSettings = field(default_factory=HomeostatSettings)
    #: entropy/hybrid: the generation itself is the probe (its first tokens are held).
    speculative: bool = True
    #: Where a restarted ANALITICO request's instruction goes: after the conversation, as a
    #: user message of its own (``message``) or appended to the last user message
    #: (``after``), both keeping the engine's cached prefix; as the start of the answer
    #: (``answer``: ``restart_prefix`` continued by the engine, ``continue_final_message``,
    #: so nothing but the prefix is prefilled again); or in the system prompt (``system``,
    #: the seed's placement).
    restart_placement: str = "answer"
    restart_prefix: str = DEFAULT_ANSWER_PREFIX
    # -- care: the interventions and the measured policy (lkn.decision.interventions, .policy)
    #: What an ANALITICO request gets when no policy rule says otherwise (and for the
    #: ``analitico`` override): an intervention spec such as ``prompt`` or ``sampling+prompt``.
    care_intervention: str = "prompt"
    prompt_placement: str = "system"
    careful_temperature: float = 0.0
    careful_top_p: float = 1.0
    consistency_k: int = 5
    consistency_temperature: float = 0.7
    consistency_max_tokens: int = 256
    #: The measured policy in force (``LKN_POLICY`` names a file), or None.
    policy: Policy | None = None
    #: The ``LKN_POLICY`` setting as given (``auto``, ``none`` or a path), for ``/ready``.
    policy_setting: str = DEFAULT_POLICY
    #: ``LKN_POLICY=auto``: the shipped policies (read from their files by load_settings, so
    #: derived from ``policy_setting``, not compared); a request gets the one for its model.
    shipped_policies: tuple[Policy, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class ClientLimits:
    """What a client may ask of the engines (lkn.requests checks it; 400 or 403 beyond)."""

    #: Whether any client may name its own care (``X-LKN-Intervention``).
    interventions: bool = False
    #: A key whose holders may name their care (it also authenticates, as LKN_API_KEY does).
    care_key: str | None = None
    #: Upper bounds on ``max_tokens`` / ``max_completion_tokens``, ``n``, ``min_tokens``,
    #: and on K of a ``consistency:K`` vote a client names.
    max_tokens: int = 16384
    max_n: int = 4
    max_min_tokens: int = 1024
    max_vote: int = 8


PLACEMENT_POLICIES = ("least_loaded", "cache_aware")


@dataclass(frozen=True)
class PlacementSettings:
    policy: str = "least_loaded"
    #: Longest block of prompt text, in characters (a chat message starts a new block).
    block_chars: int = 256
    #: Blocks of a prompt that are hashed; the rest of a longer prompt is not read.
    max_blocks: int = 128
    #: Block hashes remembered per engine (least recently used go first).
    record_blocks: int = 16384
    #: In-flight requests an engine holding the prefix may have above the least loaded one.
    max_imbalance: int = 4
    #: Share of a prompt (characters read) an engine must hold to be preferred, unless it
    #: holds the conversation's whole history.
    min_match: float = 0.5

    @property
    def enabled(self) -> bool:
        return self.policy == "cache_aware"


@dataclass(frozen=True)
class Settings:
    """Every setting of the gateway, validated. Build it with :func:`load_settings`."""

    engines: tuple[EngineSpec, ...] = (EngineSpec("http://127.0.0.1:30000"),)
    engine_model: str = "Qwen/Qwen2.5-3B-Instruct-AWQ"
    engine_mem_fraction: float = 0.85
    host: str = "127.0.0.1"
    port: int = 8000
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    grpc_enabled: bool = True
    api_key: str | None = None
    #: What a client may ask for: its own care, and bounds on its sampling parameters.
    client: ClientLimits = field(default_factory=ClientLimits)
    breaker_failures: int = 5
    breaker_reset: float = 30.0
    #: How long a request waits for a half-open engine's trial before it gets 503.
    breaker_trial_wait: float = 10.0
    connect_timeout: float = 5.0
    #: Longest silence allowed from an engine while a request is under way (prefill included).
    read_timeout: float = 300.0
    #: Upper bound on one whole request to an engine (0 = none).
    request_timeout: float = 0.0
    health_interval: float = 2.0
    health_timeout: float = 2.0
    #: Consecutive failed readiness checks that mark an engine not ready.
    ready_failures: int = 3
    #: Consecutive passing checks that mark a not-ready engine ready again.
    ready_successes: int = 2
    max_body_bytes: int = 4 * 1024 * 1024
    max_concurrency: int = 256
    engine_connections: int = 512
    shutdown_grace: float = 10.0
    log_level: str = "INFO"
    log_prompts: bool = False
    model_variants: bool = True
    decision: DecisionSettings = field(default_factory=DecisionSettings)
    placement: PlacementSettings = field(default_factory=PlacementSettings)
    # -- client-facing stream and browser settings --
    #: Sent to every engine as ``Authorization: Bearer`` (SGLang started with --api-key).
    engine_api_key: str | None = None
    #: Seconds of silence on an SSE stream before a ``: keep-alive`` comment (0 = never).
    sse_keepalive: float = 15.0
    #: Origins allowed to call the REST API from a browser (CORS); empty = CORS off.
    cors_origins: tuple[str, ...] = ()
    #: Which delta field carries reasoning text to clients: reasoning_content, reasoning, both.
    reasoning_field: str = "reasoning_content"
    #: Add a folded note (a reasoning block) with the decision to every chat reply.
    decision_note: bool = False
    #: Gateway processes sharing the ports (SO_REUSEPORT); 1 = this process serves alone.
    workers: int = 1
    #: Continue a stream on another engine when its engine fails after the first byte.
    resume: bool = False
    #: Other engines tried to continue one stream.
    resume_attempts: int = 2
    #: Stop an answer that repeats itself (a degenerate loop) and end it with finish "length".
    loop_guard: bool = True
    #: What the loop guard counts as a loop (window, repeats, shortest span).
    loop: LoopSettings = field(default_factory=LoopSettings)
    #: max_tokens given to a request that sets none (0 = leave it to the engine).
    default_max_tokens: int = 1024
    # -- client connections and exposure --
    #: Seconds a client has to send a request's headers (from the connection or the last reply).
    header_timeout: float = 10.0
    #: Seconds a client has to send a request's body once its headers are in.
    body_timeout: float = 30.0
    #: Seconds an idle keep-alive connection (REST or gRPC) is kept open.
    idle_timeout: float = 60.0
    #: Open client connections on the REST port; more are closed at once.
    max_connections: int = 1024
    #: Serve /metrics without the API key (for a scraper on a trusted network).
    metrics_public: bool = False
    #: How an engine is named everywhere (X-LKN-Engine, /ready, /lkn, logs, metrics):
    #: ``name`` (engine-1, ...) or ``address`` (host:port).
    engine_header: str = "name"
    #: Host names the REST API answers to (the Host header, against DNS rebinding); empty:
    #: the loopback names and ``host`` (see lkn.rest.hosts); ``*``: any.
    allowed_hosts: tuple[str, ...] = ()
    # -- gRPC bounds (connections and calls at once: ``max_connections``, as REST) --
    #: Concurrent streams (calls) on one gRPC connection.
    grpc_max_streams: int = 100
    #: Seconds after which a gRPC connection is asked to go away (GOAWAY) ...
    grpc_max_connection_age: float = 1800.0
    #: ... and the seconds its calls then have to finish before it is closed.
    grpc_connection_age_grace: float = 600.0

    def engine_name(self, spec: EngineSpec) -> str:
        """An engine's one name: ``engine-N`` (its place in LKN_ENGINE_URLS), or its address
        with ``LKN_ENGINE_HEADER=address``."""
        if self.engine_header != "address":
            for number, known in enumerate(self.engines, start=1):
                if known == spec:
                    return f"engine-{number}"
        return spec.name


#: The defaults, each written once (in the dataclasses above).
D = Settings()
DD = DecisionSettings()
H = HomeostatSettings()
P = PlacementSettings()
#: ``LKN_*`` names the scripts and tools read, not the gateway.
TOOL_NAMES = frozenset({
    "LKN_ENV_FILE", "LKN_LOG_DIR", "LKN_CACHE", "LKN_ROOT", "LKN_PYTHON", "LKN_INSTALL",
    "LKN_WITH_WEBUI", "LKN_FOREGROUND", "LKN_SMOKE", "LKN_GATEWAY_URL", "LKN_ENGINE_URL",
    "LKN_WEBUI_URL", "LKN_CHROMIUM", "LKN_START_TIMEOUT", "LKN_STOP_TIMEOUT", "LKN_CPU_STUB",
    "LKN_SGL_KERNEL_STUB_TRACE", "LKN_PID_DIR", "LKN_WORKER", "LKN_FUZZ_SEED", "LKN_FUZZ_CASES",
})


class _Reader:
    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values
        #: Every name a setting was looked up under (the known names).
        self.asked: set[str] = set()

    def raw(self, name: str) -> str | None:
        self.asked.add(name)
        value = self._values.get(name)
        if value is None:
            return None
        value = value.strip()
        return value if value != "" else None

    def get(self, name: str, default: T, parse: Callable[[str], T], rule: str) -> T:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            detail = f" ({exc})" if str(exc) else ""
            raise ConfigError(f"{name}={raw!r} is invalid: expected {rule}{detail}") from None

    def text(self, name: str, default: str) -> str:
        return self.get(name, default, str, "text")

    def integer(self, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        def parse(raw: str) -> int:
            value = int(raw)
            if value < minimum or (maximum is not None and value > maximum):
                raise ValueError("out of range")
            return value

        upper = f" and <= {maximum}" if maximum is not None else ""
        return self.get(name, default, parse, f"an integer >= {minimum}{upper}")

    def number(
        self, name: str, default: float, minimum: float = 0.0, maximum: float | None = None
    ) -> float:
        def parse(raw: str) -> float:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError("not a finite number")
            if value < minimum or (maximum is not None and value > maximum):
                raise ValueError("out of range")
            return value

        upper = f" and <= {maximum}" if maximum is not None else ""
        return self.get(name, default, parse, f"a finite number >= {minimum}{upper}")

    def flag(self, name: str, default: bool) -> bool:
        def parse(raw: str) -> bool:
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("")

        return self.get(name, default, parse, "true or false")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        def parse(raw: str) -> str:
            lowered = raw.lower()
            if lowered not in choices:
                raise ValueError("")
            return lowered

        return self.get(name, default, parse, "one of " + ", ".join(choices))


def parse_engines(raw: str) -> tuple[EngineSpec, ...]:
    """``[kind=]url[,[kind=]url...]`` -> engine specs; kind is ``sglang`` (default) or ``openai``.

    A URL is the engine's base (``http://host:port``); a trailing ``/v1`` is accepted and
    dropped (the gateway adds the API paths itself), any other path is refused. Two URLs
    naming the same host and port are refused.
    """
    specs: list[EngineSpec] = []
    seen: dict[tuple[str, int], str] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        kind = "sglang"
        if "=" in item.split("://", 1)[0]:
            kind, item = (part.strip() for part in item.split("=", 1))
            if kind not in ENGINE_KINDS:
                raise ValueError(f"unknown engine kind {kind!r}")
        url, where = normalise_engine_url(item)
        if where in seen:
            raise ValueError(f"{item!r} and {seen[where]!r} are the same engine")
        seen[where] = item
        specs.append(EngineSpec(url=url, kind=kind))
    if not specs:
        raise ValueError("no engine URL")
    return tuple(specs)


def normalise_engine_url(item: str) -> tuple[str, tuple[str, int]]:
    """The base URL (lower-case scheme and host, no ``/v1``) and its (host, port)."""
    parts = urlsplit(item)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{item!r} is not an http(s) URL")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{item!r} has a bad port") from None
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{item!r} must be a plain http(s)://host:port URL")
    path = parts.path.rstrip("/")
    if path.lower() == "/v1":
        path = ""
    if path:
        raise ValueError(f"{item!r} has the path {parts.path!r}: give the engine's base URL "
                         "(http://host:port; the gateway adds /v1/... itself)")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if port is None:
        port = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    netloc = shown if parts.port is None else f"{shown}:{port}"
    return f"{scheme}://{netloc}", (host, port)


def parse_origins(raw: str) -> tuple[str, ...]:
    """``*`` or comma-separated ``scheme://host[:port]`` origins, as browsers send them."""
    origins: list[str] = []
    for item in raw.split(","):
        item = item.strip().rstrip("/")
        if not item:
            continue
        if item != "*":
            parts = urlsplit(item)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
                raise ValueError(f"{item!r} is not an origin")
        origins.append(item)
    return tuple(origins)


_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?")


def parse_hosts(raw: str) -> tuple[str, ...]:
    """``*`` or comma-separated host names and addresses, as a Host header names them
    (lower case, IPv6 in brackets or not; no scheme, no port)."""
    hosts: list[str] = []
    for item in raw.split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item != "*":
            bare = item[1:-1] if item.startswith("[") and item.endswith("]") else item
            try:
                ipaddress.IPv6Address(bare)
            except ValueError:
                if bare != item or not _HOST_NAME.fullmatch(bare):
                    raise ValueError(f"{item!r} is not a host name or address "
                                     "(no scheme, no port)") from None
        hosts.append(item)
    if not hosts:
        raise ValueError("no host")
    return tuple(hosts)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=value`` env file (``#`` comments, optional quotes, optional ``export``)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigError(f"{path}:{number}: expected KEY=value, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def _homeostat_settings(r: _Reader) -> HomeostatSettings:
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


def _care_settings(r: _Reader) -> dict[str, Any]:
    """The interventions' settings and the policy file (validated here, at start-up)."""
    from lkn.decision import interventions
    from lkn.decision.policy import PolicyError, load_policy

    placement = r.choice("LKN_PROMPT_PLACEMENT", "system", interventions.PLACEMENTS)
    k = r.integer("LKN_CONSISTENCY_K", 5, minimum=2, maximum=16)
    care = r.get("LKN_INTERVENTION", "prompt",
                 lambda raw: interventions.parse(raw, placement, k).name,
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
    env = dict(os.environ if environ is None else environ)
    explicit = env_file is not None or "LKN_ENV_FILE" in env
    path = Path(env_file if env_file is not None else env.get("LKN_ENV_FILE", DEFAULT_ENV_FILE))
    if path.is_file():
        merged = read_env_file(path)
        merged.update(env)
        env = merged
    elif explicit:
        raise ConfigError(f"LKN_ENV_FILE={str(path)!r} is invalid: the file does not exist")

    r = _Reader(env)
    max_tokens_fluido = r.integer("LKN_MAX_TOKENS_FLUIDO", DD.max_tokens_fluido, minimum=1)
    decision = DecisionSettings(
        mode=r.choice("LKN_MODE", DD.mode, MODES),
        strategy=r.choice("LKN_DECISION_STRATEGY", DD.strategy, STRATEGIES),
        entropy_threshold=r.number("LKN_ENTROPY_THRESHOLD", DD.entropy_threshold, 0.0, 1.0),
        probe_top_k=r.integer("LKN_PROBE_TOP_K", DD.probe_top_k, minimum=1, maximum=20),
        probe_tokens=r.integer("LKN_PROBE_TOKENS", DD.probe_tokens, minimum=1, maximum=16),
        probe_timeout=r.number("LKN_PROBE_TIMEOUT", DD.probe_timeout, minimum=0.01),
        max_tokens_fluido=max_tokens_fluido,
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
    settings = Settings(
        engines=r.get(
            "LKN_ENGINE_URLS",
            D.engines,
            parse_engines,
            "a comma-separated list of http(s) URLs, each optionally prefixed 'openai='",
        ),
        engine_model=r.text("ENGINE_MODEL", D.engine_model),
        engine_mem_fraction=r.number("ENGINE_MEM_FRACTION", D.engine_mem_fraction, 0.0, 1.0),
        host=r.text("LKN_HOST", D.host),
        port=r.integer("LKN_PORT", D.port, maximum=65535),
        # Its own default (loopback), never LKN_HOST's: binding REST to every interface for a
        # proxy must not expose plaintext gRPC too.
        grpc_host=r.text("LKN_GRPC_HOST", D.grpc_host),
        grpc_port=r.integer("LKN_GRPC_PORT", D.grpc_port, maximum=65535),
        grpc_enabled=r.flag("LKN_GRPC_ENABLED", D.grpc_enabled),
        api_key=_api_key(r, env),
        client=_client_limits(r),
        breaker_failures=r.integer("LKN_BREAKER_FAILURES", D.breaker_failures, minimum=1),
        breaker_reset=r.number("LKN_BREAKER_RESET", D.breaker_reset, minimum=0.01),
        breaker_trial_wait=r.number("LKN_BREAKER_TRIAL_WAIT", D.breaker_trial_wait),
        connect_timeout=r.number("LKN_CONNECT_TIMEOUT", D.connect_timeout, minimum=0.01),
        read_timeout=r.number("LKN_READ_TIMEOUT", D.read_timeout, minimum=0.01),
        request_timeout=r.number("LKN_REQUEST_TIMEOUT", D.request_timeout),
        health_interval=r.number("LKN_HEALTH_INTERVAL", D.health_interval, minimum=0.05),
        health_timeout=r.number("LKN_HEALTH_TIMEOUT", D.health_timeout, minimum=0.05),
        ready_failures=r.integer("LKN_READY_FAILURES", D.ready_failures, minimum=1),
        ready_successes=r.integer("LKN_READY_SUCCESSES", D.ready_successes, minimum=1),
        max_body_bytes=r.integer("LKN_MAX_BODY_BYTES", D.max_body_bytes, minimum=1024),
        max_concurrency=r.integer("LKN_MAX_CONCURRENCY", D.max_concurrency, minimum=1),
        engine_connections=r.integer("LKN_ENGINE_CONNECTIONS", D.engine_connections, minimum=1),
        shutdown_grace=r.number("LKN_SHUTDOWN_GRACE", D.shutdown_grace),
        log_level=r.choice("LKN_LOG_LEVEL", D.log_level.lower(),
                           ("debug", "info", "warning", "error")).upper(),
        log_prompts=r.flag("LKN_LOG_PROMPTS", D.log_prompts),
        model_variants=r.flag("LKN_MODEL_VARIANTS", D.model_variants),
        decision=decision,
        workers=r.integer("LKN_WORKERS", D.workers, minimum=1, maximum=64),
        resume=r.flag("LKN_RESUME", D.resume),
        resume_attempts=r.integer("LKN_RESUME_ATTEMPTS", D.resume_attempts, minimum=1, maximum=16),
        loop_guard=r.flag("LKN_LOOP_GUARD", D.loop_guard),
        loop=LoopSettings(
            window=r.integer("LKN_LOOP_WINDOW", D.loop.window, minimum=64, maximum=65536),
            repeats=r.integer("LKN_LOOP_REPEATS", D.loop.repeats, minimum=2, maximum=64),
            min_chars=r.integer("LKN_LOOP_MIN_CHARS", D.loop.min_chars, minimum=8,
                                maximum=65536),
            counting_repeats=r.integer("LKN_LOOP_COUNTING_REPEATS", D.loop.counting_repeats,
                                       minimum=0, maximum=1024),
        ),
        default_max_tokens=r.integer("LKN_DEFAULT_MAX_TOKENS", D.default_max_tokens,
                                     maximum=1 << 20),
        placement=PlacementSettings(
            policy=r.choice("LKN_PLACEMENT", P.policy, PLACEMENT_POLICIES),
            block_chars=r.integer("LKN_PLACEMENT_BLOCK_CHARS", P.block_chars, minimum=16,
                                  maximum=65536),
            max_blocks=r.integer("LKN_PLACEMENT_MAX_BLOCKS", P.max_blocks, minimum=1,
                                 maximum=4096),
            record_blocks=r.integer("LKN_PLACEMENT_RECORD_BLOCKS", P.record_blocks, minimum=1,
                                    maximum=1 << 22),
            max_imbalance=r.integer("LKN_PLACEMENT_MAX_IMBALANCE", P.max_imbalance),
            min_match=r.number("LKN_PLACEMENT_MIN_MATCH", P.min_match, 0.0, 1.0),
        ),
        engine_api_key=r.raw("ENGINE_API_KEY"),
        sse_keepalive=r.number("LKN_SSE_KEEPALIVE", D.sse_keepalive),
        cors_origins=r.get("LKN_CORS_ORIGINS", D.cors_origins, parse_origins,
                           "a comma-separated list of origins like https://chat.example.org, or *"),
        reasoning_field=r.choice("LKN_REASONING_FIELD", D.reasoning_field, REASONING_FIELDS),
        decision_note=r.flag("LKN_DECISION_NOTE", D.decision_note),
        header_timeout=r.number("LKN_HEADER_TIMEOUT", D.header_timeout, minimum=0.1),
        body_timeout=r.number("LKN_BODY_TIMEOUT", D.body_timeout, minimum=0.1),
        idle_timeout=r.number("LKN_IDLE_TIMEOUT", D.idle_timeout, minimum=0.1),
        max_connections=r.integer("LKN_MAX_CONNECTIONS", D.max_connections, minimum=1),
        metrics_public=r.flag("LKN_METRICS_PUBLIC", D.metrics_public),
        engine_header=r.choice("LKN_ENGINE_HEADER", D.engine_header, ("name", "address")),
        allowed_hosts=r.get("LKN_ALLOWED_HOSTS", D.allowed_hosts, parse_hosts,
                            "a comma-separated list of host names or addresses, or *"),
        grpc_max_streams=r.integer("LKN_GRPC_MAX_STREAMS", D.grpc_max_streams, minimum=1),
        grpc_max_connection_age=r.number("LKN_GRPC_MAX_CONNECTION_AGE",
                                         D.grpc_max_connection_age, minimum=1.0),
        grpc_connection_age_grace=r.number("LKN_GRPC_CONNECTION_AGE_GRACE",
                                           D.grpc_connection_age_grace),
    )
    refuse_unknown_names(env, r.asked)
    return settings


def _client_limits(r: _Reader) -> ClientLimits:
    C = ClientLimits
    return ClientLimits(
        interventions=r.flag("LKN_CLIENT_INTERVENTIONS", C.interventions),
        care_key=r.raw("LKN_CARE_API_KEY"),  # empty: no such key (care stays closed)
        max_tokens=r.integer("LKN_MAX_TOKENS_LIMIT", C.max_tokens, minimum=1, maximum=1 << 20),
        max_n=r.integer("LKN_MAX_N", C.max_n, minimum=1, maximum=16),
        max_min_tokens=r.integer("LKN_MAX_MIN_TOKENS", C.max_min_tokens, maximum=1 << 20),
        max_vote=r.integer("LKN_MAX_VOTE", C.max_vote, minimum=2, maximum=16),
    )


def _api_key(r: _Reader, env: Mapping[str, str]) -> str | None:
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


def export_lines(path: Path, environ: Mapping[str, str]) -> list[str]:
    """``export KEY='value'`` for each variable of the env file not already in ``environ``:
    what the shell scripts evaluate, so they and the gateway read the file one way."""
    import shlex

    return [f"export {key}={shlex.quote(value)}"
            for key, value in read_env_file(path).items() if key not in environ]


if __name__ == "__main__":  # python -m lkn.config --export FILE (scripts/lib/common.sh)
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "--export":
        sys.exit("usage: python -m lkn.config --export ENV_FILE")
    try:
        print("\n".join(export_lines(Path(sys.argv[2]), os.environ)))
    except (ConfigError, OSError, UnicodeDecodeError) as exc:
        sys.exit(f"lkn: configuration error: {exc}")

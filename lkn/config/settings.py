"""The gateway's settings as typed values, and their defaults (each written once, here).

:func:`lkn.config.load_settings` builds them from the environment (:mod:`lkn.config.load`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from lkn.care.policy import Policy
from lkn.loopguard import LoopSettings


DEFAULT_ENV_FILE = "config/.env"
#: ``auto``: the policies shipped with L-kn (``lkn/care/policies``, written by
#: ``lkn eval --choose``), each applied only to requests for the model it was measured on.
DEFAULT_POLICY = "auto"
SHIPPED_POLICIES = Path(__file__).parent.parent / "care" / "policies"
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
    # -- care: the interventions and the measured policy (lkn.care.specs, .policy)
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
    """What a client may ask of the engines (lkn.client_request checks it; 400 or 403 beyond)."""

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


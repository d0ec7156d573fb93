"""Validation of OpenAI request bodies into :class:`~lkn.values.GenerateRequest`.

Checks what the gateway and the engine rely on (required fields, types, bounds) and keeps
every other field as it is, so new OpenAI or SGLang options pass through.
"""

from __future__ import annotations

from lkn.config import ClientLimits
from lkn.errors import BadRequest, Forbidden
from lkn.values import GenerateRequest, JSONObject, JSONValue, Route

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
OVERRIDES = frozenset({"fluido", "analitico", "auto"})
_INT32_MAX = 2**31 - 1
#: Sampling numbers: key, range, and whether the minimum itself is excluded. The last two are
#: SGLang's sampling extensions (also the gRPC SamplingParams), in the engine's own ranges.
_SAMPLING_NUMBERS: tuple[tuple[str, float, float, bool], ...] = (
    ("temperature", 0.0, 2.0, False), ("top_p", 0.0, 1.0, False),
    ("presence_penalty", -2.0, 2.0, False), ("frequency_penalty", -2.0, 2.0, False),
    ("min_p", 0.0, 1.0, False), ("repetition_penalty", 0.0, 2.0, True),
)
#: Sampling integers: key and range.
_SAMPLING_INTS: tuple[tuple[str, int, int], ...] = (
    ("top_k", -1, _INT32_MAX), ("seed", -(2**63), 2**63 - 1),
)


def _is_int(value: JSONValue) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: JSONValue) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(body: JSONObject, key: str, minimum: int, maximum: int | None = None) -> None:
    value = body.get(key)
    if value is None:
        return
    if not _is_int(value):
        raise BadRequest(f"'{key}' must be an integer", param=key)
    assert isinstance(value, int)
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise BadRequest(f"'{key}' must be >= {minimum}{upper}, got {value}", param=key)


def _check_number(
    body: JSONObject, key: str, minimum: float, maximum: float, above_minimum: bool = False
) -> None:
    """A finite number in ``[minimum, maximum]`` (``(minimum, maximum]`` with ``above_minimum``);
    NaN and infinities fail every range."""
    value = body.get(key)
    if value is None:
        return
    if not _is_number(value):
        raise BadRequest(f"'{key}' must be a number", param=key)
    assert isinstance(value, (int, float))
    low_ok = value > minimum if above_minimum else value >= minimum
    if not (low_ok and value <= maximum):
        bounds = (f"above {minimum} and at most {maximum}" if above_minimum
                  else f"between {minimum} and {maximum}")
        raise BadRequest(f"'{key}' must be {bounds}", param=key)


def _check_budget(body: JSONObject, limits: ClientLimits, default_max_tokens: int) -> None:
    """What one request may cost the engines: the token budget, ``n``, ``min_tokens`` and
    ``ignore_eos`` against the gateway's caps (``LKN_MAX_TOKENS_LIMIT``, ``LKN_MAX_N``,
    ``LKN_MAX_MIN_TOKENS``)."""
    for key in ("max_tokens", "max_completion_tokens"):
        _check_int(body, key, 1, limits.max_tokens)
    _check_int(body, "n", 1, limits.max_n)
    _check_int(body, "min_tokens", 0, limits.max_min_tokens)
    ignore_eos = body.get("ignore_eos")
    if ignore_eos is not None and not isinstance(ignore_eos, bool):
        raise BadRequest("'ignore_eos' must be a boolean", param="ignore_eos")
    budget = body.get("max_tokens", body.get("max_completion_tokens"))
    if ignore_eos and budget is None and not default_max_tokens:
        raise BadRequest("'ignore_eos' needs 'max_tokens': without an end of sequence the "
                         "answer would run to the end of the context", param="ignore_eos")
    minimum = body.get("min_tokens")
    if isinstance(minimum, int) and isinstance(budget, int) and minimum > budget:
        raise BadRequest(f"'min_tokens' ({minimum}) must not exceed 'max_tokens' ({budget})",
                         param="min_tokens")


def _check_common(body: JSONObject, limits: ClientLimits,
                  default_max_tokens: int) -> tuple[bool, bool]:  # fmt: skip
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise BadRequest("'model' must be a string", param="model")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean", param="stream")
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise BadRequest("'stream_options' must be an object", param="stream_options")
        flag = options.get("include_usage", False)
        if not isinstance(flag, bool):
            raise BadRequest(
                "'stream_options.include_usage' must be a boolean", param="stream_options"
            )
        include_usage = flag
    _check_budget(body, limits, default_max_tokens)
    for key, minimum, maximum, above in _SAMPLING_NUMBERS:
        if key in body:  # most requests set few of them
            _check_number(body, key, minimum, maximum, above)
    for key, low, high in _SAMPLING_INTS:
        if key in body:
            _check_int(body, key, low, high)
    if body.get("top_k") == 0:
        raise BadRequest("'top_k' must be -1 (off) or at least 1", param="top_k")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
            raise BadRequest("'stop' must be a string or a list of strings", param="stop")
    return stream, include_usage


def _check_messages(body: JSONObject) -> None:
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("'messages' is required", param="messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty list", param="messages")
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise BadRequest(f"'{param}' must be an object", param=param)
        role = message.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise BadRequest(
                f"'{param}.role' must be one of {', '.join(sorted(_ROLES))}", param=param
            )
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise BadRequest(f"'{param}.content' must be a string or a list", param=param)
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise BadRequest("'tools' must be a list", param="tools")
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise BadRequest("'logprobs' must be a boolean", param="logprobs")
    _check_int(body, "top_logprobs", 0, 20)


def _check_prompt(body: JSONObject) -> None:
    prompt = body.get("prompt")
    if prompt is None:
        raise BadRequest("'prompt' is required", param="prompt")
    if isinstance(prompt, str):
        return
    if isinstance(prompt, list) and prompt and (
        all(isinstance(p, str) for p in prompt) or all(_is_int(p) for p in prompt)
    ):
        return
    raise BadRequest(
        "'prompt' must be a string, a list of strings or a list of token ids", param="prompt"
    )


def parse_request(
    route: Route,
    body: JSONValue,
    request_id: str,
    mode_override: str | None = None,
    timeout: float | None = None,
    limits: ClientLimits = ClientLimits(),
    default_max_tokens: int = 0,
) -> GenerateRequest:
    """Validate a decoded JSON body for ``route``; raise :class:`BadRequest` if it is wrong
    (``limits``: the gateway's caps; ``default_max_tokens``: the budget it gives a request
    that names none)."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if route is Route.CHAT:
        _check_messages(body)
    else:
        _check_prompt(body)
    stream, include_usage = _check_common(body, limits, default_max_tokens)
    if mode_override is not None:
        mode_override = mode_override.strip().lower()
        if mode_override not in OVERRIDES:
            raise BadRequest(
                "the mode override must be one of fluido, analitico, auto", param="mode"
            )
        if mode_override == "auto":
            mode_override = None
    return GenerateRequest(
        route=route,
        body=body,
        request_id=request_id,
        stream=stream,
        include_usage=include_usage,
        mode_override=mode_override,
        timeout=timeout,
    )


def requested_intervention(value: str | None, limits: ClientLimits = ClientLimits(),
                           allowed: bool = True) -> str | None:  # fmt: skip
    """A client's ``X-LKN-Intervention`` (REST header, gRPC metadata), checked; None if absent.

    Raises :class:`Forbidden` (403 / PERMISSION_DENIED) when this client may not name its
    care (``allowed``: ``LKN_CLIENT_INTERVENTIONS`` or the care key), :class:`BadRequest`
    (400 / INVALID_ARGUMENT) for a malformed spec or a vote larger than ``LKN_MAX_VOTE``.
    """
    if value is None or not value.strip():
        return None
    if not allowed:
        raise Forbidden("this gateway decides the care itself: X-LKN-Intervention needs "
                        "LKN_CLIENT_INTERVENTIONS=on or the care key (LKN_CARE_API_KEY)",
                        param="X-LKN-Intervention", code="client_interventions_disabled")
    from lkn.care.specs import parse

    try:
        # placement and k are the gateway's: the decider parses it again
        k = parse(value, "system", 2).consistency
    except ValueError as exc:
        raise BadRequest(f"X-LKN-Intervention: {exc}", param="X-LKN-Intervention",
                         code="invalid_intervention") from None
    if k > limits.max_vote:
        raise BadRequest(f"X-LKN-Intervention: a vote of at most {limits.max_vote} answers "
                         f"(LKN_MAX_VOTE), got {k}", param="X-LKN-Intervention",
                         code="invalid_intervention")
    return value.strip().lower()

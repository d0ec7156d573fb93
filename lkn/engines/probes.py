"""Entropy probes on the wire: the request a probe sends and the logprobs its reply carries.

A probe generates a few tokens greedily and asks for the top-K logprobs at each position.
Chat requests use the chat route (the engine applies the same template as for the
generation, so the radix cache reuses the prefill); raw prompts use SGLang's native
``/generate`` (``max_new_tokens``, ``top_logprobs_num``) or ``/v1/completions``.
"""

from __future__ import annotations

from lkn.values import JSONObject, JSONValue, Route, TopToken

#: Keys of a chat request a probe keeps (what decides the prompt and its template).
_CHAT_KEYS = ("messages", "model", "tools", "chat_template_kwargs")
#: Keys of a completions request a probe keeps.
_COMPLETION_KEYS = ("prompt", "model")


def probe_request(
    route: Route, body: JSONObject, engine_kind: str, top_k: int, tokens: int
) -> tuple[Route | str, JSONObject]:
    """The route and body of a probe of ``body`` (sent to ``route``) for an engine of
    ``engine_kind`` (``"sglang"`` or ``"openai"``): ``tokens`` greedy tokens, ``top_k``
    logprobs at each."""
    if route is Route.CHAT:
        probe = {key: body[key] for key in _CHAT_KEYS if key in body}
        probe.update(
            max_tokens=tokens, temperature=0.0, logprobs=True, top_logprobs=top_k, stream=False
        )
        return route, probe
    if engine_kind == "sglang":
        return "/generate", {
            "text": body.get("prompt", ""),
            "sampling_params": {"max_new_tokens": tokens, "temperature": 0.0},
            "return_logprob": True,
            "top_logprobs_num": top_k,
            "return_text_in_logprobs": True,
            "stream": False,
        }
    probe = {key: body[key] for key in _COMPLETION_KEYS if key in body}
    probe.update(max_tokens=tokens, temperature=0.0, logprobs=top_k, stream=False)
    return route, probe


def probe_positions(body: JSONObject) -> tuple[tuple[TopToken, ...], ...]:
    """Top-K alternatives per generated position, from any probe reply shape we use.

    Accepts an OpenAI chat body (``choices[0].logprobs.content[i].top_logprobs``), an OpenAI
    completions body (``choices[0].logprobs.top_logprobs[i]`` as ``{token: logprob}``) and a
    native SGLang ``/generate`` body (``meta_info.output_top_logprobs[i]`` as
    ``[logprob, token_id, text]`` triples).
    """
    meta = body.get("meta_info")
    if isinstance(meta, dict):
        return _native_positions(meta.get("output_top_logprobs"))
    choices = body.get("choices")
    if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
        return ()
    logprobs = choices[0].get("logprobs")
    if not isinstance(logprobs, dict):
        return ()
    content = logprobs.get("content")
    if isinstance(content, list):
        return tuple(_top_from_openai(entry) for entry in content)
    legacy = logprobs.get("top_logprobs")
    if isinstance(legacy, list):
        return tuple(
            tuple(TopToken(k, _logprob(v)) for k, v in entry.items())
            if isinstance(entry, dict)
            else ()
            for entry in legacy
        )
    return ()


def _native_positions(tops: JSONValue) -> tuple[tuple[TopToken, ...], ...]:
    """SGLang's ``output_top_logprobs``: per position, ``[logprob, token_id, text]`` triples
    (a token without its text is shown as ``<token_id>``)."""
    positions: list[tuple[TopToken, ...]] = []
    if isinstance(tops, list):
        for position in tops:
            row: list[TopToken] = []
            if isinstance(position, list):
                for triple in position:
                    if isinstance(triple, list) and len(triple) >= 2:
                        text = triple[2] if len(triple) > 2 else None
                        label = text if isinstance(text, str) else f"<{triple[1]}>"
                        row.append(TopToken(label, _logprob(triple[0])))
            positions.append(tuple(row))
    return tuple(positions)


def _top_from_openai(entry: JSONValue) -> tuple[TopToken, ...]:
    if not isinstance(entry, dict):
        return ()
    tops = entry.get("top_logprobs")
    out: list[TopToken] = []
    if isinstance(tops, list):
        for top in tops:
            if isinstance(top, dict):
                out.append(TopToken(str(top.get("token", "")), _logprob(top.get("logprob"))))
    return tuple(out)


def _logprob(value: JSONValue) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return float("-inf")

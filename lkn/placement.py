"""Cache-aware placement: send a request where its prompt's prefix is most likely cached.

An engine with a prefix cache (SGLang's radix cache) answers a prompt faster when it has
seen the prompt's beginning before: a conversation's earlier turns, a shared system prompt
or document. The gateway cannot see the engines' caches, so it keeps its own bounded record
of what it recently sent where, the way SGLang's model gateway does with its approximate
tree (``cache_aware`` policy), and asks it which engine most likely still holds the prefix.

A prompt is cut into blocks: every chat message starts a new block (so turn N+1 of a
conversation, which repeats turn N's messages, shares all of turn N's blocks), and long
messages or plain prompts are cut every ``block_chars`` characters. Block ``i`` is known by
a hash chained over blocks ``0..i``, so a hash found in an engine's record stands for the
whole prefix up to that block. Each engine's record is an LRU set of such hashes, capped at
``record_blocks`` entries (the engine's own cache forgets old prefixes too); only the first
``max_blocks`` blocks of a prompt are looked at. Cost per request: linear in the part of the
prompt read, at most ``block_chars * max_blocks`` characters, plus one lookup per block and
engine.

What counts as holding the prefix: all of the conversation before its last assistant
message (the previous turn's prompt, which that engine prefilled), or, for anything else
(a shared system prompt or document), at least ``min_match`` of the prompt's characters
read; a smaller match (a short system prompt shared by every new conversation) leaves the
choice to the least-loaded, so new conversations still spread over the engines, as SGLang's
model gateway does with its cache threshold.

Load guard: an engine that holds the prefix wins only while it has at most
``max_imbalance`` more requests in flight than the least-loaded candidate; past that the
caller's least-loaded choice wins, so a hot prefix (one long system prompt shared by every
conversation) cannot pile everything onto one engine once traffic is concurrent.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from lkn.config import PlacementSettings
from lkn.values import JSONObject, JSONValue

@dataclass(frozen=True)
class Prefix:
    """The chained block hashes of one prompt's beginning (empty: nothing to place by)."""

    hashes: tuple[bytes, ...]
    #: Characters of the prompt up to the end of each block.
    ends: tuple[int, ...] = ()
    #: Blocks before the conversation's last assistant message (0: no answer yet): an
    #: engine holding all of them served the conversation's previous turn.
    history: int = 0

    def __bool__(self) -> bool:
        return bool(self.hashes)


NO_PREFIX = Prefix(())


def prefix_of(body: JSONObject, settings: PlacementSettings) -> Prefix:
    """The prefix of a chat or completions request body (client's body, before decisions)."""
    budget = settings.block_chars * settings.max_blocks
    hashes: list[bytes] = []
    ends: list[int] = []
    history = 0
    digest = b""
    read = 0
    for piece, answer in _pieces(body):
        if budget <= 0 or len(hashes) >= settings.max_blocks:
            break
        if answer:
            history = len(hashes)
        piece = piece[:budget]
        budget -= len(piece)
        for start in range(0, max(len(piece), 1), settings.block_chars):
            if len(hashes) >= settings.max_blocks:
                break
            block = piece[start:start + settings.block_chars]
            digest = hashlib.blake2b(
                digest + block.encode("utf-8", "surrogatepass"), digest_size=16
            ).digest()
            hashes.append(digest)
            read += len(block)
            ends.append(read)
    return Prefix(tuple(hashes), tuple(ends), history)


def _pieces(body: JSONObject) -> Iterator[tuple[str, bool]]:
    """The prompt as text pieces, each starting a block: one per chat message (and whether
    it is an assistant's answer)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                yield _message_text(message), message.get("role") == "assistant"
            else:
                yield _text(message), False
        return
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        # A batch of prompts, or one prompt as token ids: its first element leads.
        prompt = prompt[0] if prompt and not isinstance(prompt[0], int) else prompt
    if prompt is not None and prompt != [] and prompt != "":
        yield "\x02" + _text(prompt), False


def _message_text(message: dict[str, JSONValue]) -> str:
    """One message as text: role, then content; tool calls and names are part of it."""
    parts = [str(message.get("role", "")), "\x1f", _text(message.get("content"))]
    for key in ("name", "tool_calls", "tool_call_id"):
        value = message.get(key)
        if value is not None:
            parts += ["\x1f", key, "=", _text(value)]
    return "".join(parts)


def _text(value: JSONValue) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in value
    ):
        # Content parts that are all text read as the text they join to.
        return "".join(str(p["text"]) for p in value if isinstance(p, dict))
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


class PlacementRecord:
    """Which prefixes each engine was recently sent (bounded), and the choice they suggest."""

    def __init__(self, settings: PlacementSettings) -> None:
        self.settings = settings
        self._seen: dict[str, OrderedDict[bytes, None]] = {}

    def prefix(self, body: JSONObject) -> Prefix:
        """The request's prefix, or an empty one when placement is off."""
        if not self.settings.enabled:
            return NO_PREFIX
        return prefix_of(body, self.settings)

    def matched(self, engine: str, prefix: Prefix) -> int:
        """How many leading blocks of ``prefix`` the engine was sent recently."""
        seen = self._seen.get(engine)
        if not seen:
            return 0
        count = 0
        for digest in prefix.hashes:
            if digest not in seen:
                break
            count += 1
        return count

    def choose(
        self, prefix: Prefix, candidates: Sequence[tuple[str, int]], fallback: str | None = None
    ) -> str | None:
        """Of the candidates ``(engine, in_flight)``, the one holding the longest part of the
        prefix, within the load guard. Engines that hold equally much are equally good:
        ``fallback`` (the caller's least-loaded pick) if it is one of them, else the least
        loaded of them. None when no candidate holds any of it."""
        if not prefix or not candidates:
            return None
        least = min(load for _, load in candidates)
        best: list[tuple[int, str]] = []
        best_blocks = 0
        for engine, load in candidates:
            if load - least > self.settings.max_imbalance:
                continue
            blocks = self.matched(engine, prefix)
            if blocks and blocks >= best_blocks and self._holds(prefix, blocks):
                if blocks > best_blocks:
                    best, best_blocks = [], blocks
                best.append((load, engine))
        if not best:
            return None
        if fallback is not None and any(engine == fallback for _, engine in best):
            return fallback
        return min(best)[1]

    def _holds(self, prefix: Prefix, blocks: int) -> bool:
        """Whether ``blocks`` matched blocks are worth going to that engine for: the whole
        history of the conversation, or at least ``min_match`` of the prompt read."""
        if prefix.history and blocks >= prefix.history:
            return True
        if not prefix.ends:
            return True
        return prefix.ends[blocks - 1] >= self.settings.min_match * prefix.ends[-1]

    def record(self, engine: str, prefix: Prefix) -> None:
        """The engine was sent this prefix: it is now its most recent."""
        if not prefix:
            return
        seen = self._seen.setdefault(engine, OrderedDict())
        for digest in prefix.hashes:
            if digest in seen:
                seen.move_to_end(digest)
            else:
                seen[digest] = None
        limit = self.settings.record_blocks
        while len(seen) > limit:
            seen.popitem(last=False)

    def forget(self, engine: str) -> None:
        """The engine lost its cache (restarted, or unreachable): drop its record."""
        self._seen.pop(engine, None)

    def size(self, engine: str) -> int:
        return len(self._seen.get(engine, ()))

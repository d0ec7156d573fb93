"""Runs every item through every arm against a live gateway, interleaved per item.

The machine the stack runs on is usually shared, so latencies are noisy: the arms of one
item are sent together (in a shuffled order) so every arm sees the same load over the run.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import aiohttp

from lkn.decision import rules
from lkn.eval.arms import Arm
from lkn.eval.client import Answer, ask
from lkn.eval.degeneration import judge
from lkn.eval.grader import grade
from lkn.eval.items import Item


@dataclass
class Record:
    item: str
    category: str
    lang: str
    arm: str
    correct: bool
    signals: list[str]
    text: str
    finish_reason: str | None
    completion_tokens: int
    ttft_s: float | None
    latency_s: float
    error: str | None
    headers: dict[str, str]
    #: Open chat prompts only (None for a short answer): the answer looped, or ran to the
    #: token budget without a loop.
    looped: bool | None = None
    to_budget: bool | None = None

    @property
    def open(self) -> bool:
        return self.looped is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def item_signals(item: Item, max_tokens_fluido: int = 150) -> list[str]:
    """The rule signals the gateway's rules see in this item (the policy's keys)."""
    return item_signals_of(item.prompt, max_tokens_fluido)


def item_signals_of(prompt: str, max_tokens_fluido: int = 150) -> list[str]:
    """The rule signals the gateway's rules see in an item's prompt."""
    return list(rules.evaluate(prompt, max_tokens_fluido).signals)


class Progress:
    """A one-line progress bar on a terminal (plain lines every 10% elsewhere)."""

    def __init__(self, total: int, out: TextIO = sys.stderr) -> None:
        self.total = max(1, total)
        self.done = 0
        self.errors = 0
        self.started = time.monotonic()
        self._out = out
        self._tty = out.isatty()
        self._last_decile = -1

    def step(self, error: bool) -> None:
        self.done += 1
        self.errors += int(error)
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        filled = int(30 * self.done / self.total)
        line = (f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
                f"{elapsed:5.0f}s elapsed, ~{eta:4.0f}s left, {self.errors} errors")
        if self._tty:
            self._out.write("\r" + line)
            if self.done == self.total:
                self._out.write("\n")
        else:
            decile = 10 * self.done // self.total
            if decile != self._last_decile:
                self._last_decile = decile
                self._out.write(line + "\n")
        self._out.flush()


async def run(
    url: str,
    items: Sequence[Item],
    arms: Sequence[Arm],
    *,
    model: str,
    max_tokens: int,
    concurrency: int,
    timeout: float,
    api_key: str | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Record]:
    """Every (item, arm) answer, graded; the order of the result follows ``items``."""
    jobs = _jobs(items, arms, seed)
    gate = asyncio.Semaphore(concurrency)
    signals = {item.id: item_signals(item) for item in items}
    progress = progress or Progress(len(jobs))
    client_timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
    connector = aiohttp.TCPConnector(limit=concurrency)

    async with aiohttp.ClientSession(timeout=client_timeout, connector=connector) as session:
        async def one(item: Item, arm: Arm) -> Record:
            async with gate:
                budget = max(max_tokens, int(item.answer.get("max_tokens", 0)))
                answer: Answer = await ask(session, url, item, arm, model, budget, api_key)
            progress.step(answer.error is not None)
            return _graded(item, arm, answer, signals[item.id])

        return list(await asyncio.gather(*(one(item, arm) for item, arm in jobs)))


def _jobs(items: Sequence[Item], arms: Sequence[Arm], seed: int) -> list[tuple[Item, Arm]]:
    """Every (item, arm) pair, item by item, each item's arms in a shuffled order."""
    rng = random.Random(seed)
    jobs: list[tuple[Item, Arm]] = []
    for item in items:
        order = list(arms)
        rng.shuffle(order)
        jobs.extend((item, arm) for arm in order)
    return jobs


def _graded(item: Item, arm: Arm, answer: Answer, signals: list[str]) -> Record:
    """The record of ``arm``'s answer to ``item``: an open chat prompt is right when it is
    whole (no error, no loop, not cut at the budget) and on topic."""
    looped = to_budget = None
    if item.open:
        judged = judge(answer.pieces, answer.finish_reason)
        looped, to_budget = judged.looped, judged.to_budget
        correct = (answer.error is None and not looped and not to_budget
                   and grade(answer.text, {**item.answer, "type": "open"}))
    else:
        correct = answer.error is None and grade(answer.text, item.answer,
                                                 answer.finish_reason)
    return Record(
        item=item.id, category=item.category, lang=item.lang, arm=arm.name,
        correct=correct, signals=signals, text=answer.text,
        finish_reason=answer.finish_reason,
        # An answer the loop guard ended has no usage chunk: its pieces are counted.
        completion_tokens=answer.completion_tokens or len(answer.pieces),
        ttft_s=answer.ttft_s,
        latency_s=answer.latency_s, error=answer.error, headers=answer.headers,
        looped=looped, to_budget=to_budget,
    )

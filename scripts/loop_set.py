#!/usr/bin/env python3
"""The loop guard's labelled set: collect real answers from an engine, measure the guard on it.

  python scripts/loop_set.py collect --engine http://127.0.0.1:30000 [--cap 512]
      Every open prompt of lkn/eval/data/open.jsonl, streamed straight from the engine
      (no gateway, so no guard): at temperature 0 and at the engine's default sampling
      (no sampling field, as Open WebUI sends; --samples answers each). Each answer is
      kept as the list of its streamed pieces (one token each on SGLang and llama.cpp),
      labelled ``loop`` when it ran to the cap with its tail one period repeated
      (:func:`label`), for a person to review. Writes tests/data/loop_answers.jsonl.
  python scripts/loop_set.py measure [--window W --repeats R --min-chars C --counting-repeats N]
      The guard replayed, piece by piece, on the collected answers and on the hand-made
      legitimate repetitions of tests/data/loop_legit.jsonl: detection rate, tokens from
      the loop's start to its detection, and false positives, printed.

A loop "starts" at its first repeated piece: the first piece of the second copy of the
period, the first point at which the answer says again what it has just said.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lkn.loopguard import LoopGuard, LoopSettings, smallest_periods  # noqa: E402

OPEN = ROOT / "lkn" / "eval" / "data" / "open.jsonl"
ANSWERS = ROOT / "tests" / "data" / "loop_answers.jsonl"
LEGIT = ROOT / "tests" / "data" / "loop_legit.jsonl"


def periodic_tail(text: str, copies: float) -> tuple[int, int]:
    """(period, span) of the longest suffix of ``text`` of at least 120 characters holding
    ``copies`` copies of its smallest period (the whole answer: no window, unlike the guard)."""
    periods = smallest_periods(text[::-1])
    for length in range(len(text), 119, -1):
        p = periods[length - 1]
        if length >= copies * p:
            return p, length
    return 0, 0


#: Answers a person read and labelled against the rule below, and why.
REVIEWED: dict[str, str] = {}


def label(pieces: list[str], finish: str | None, rid: str = "") -> tuple[str, int | None, str]:
    """(``loop`` or ``normal``, the char offset where the loop starts, its kind).

    A loop is an answer whose tail is one passage said again and again: at least two
    back-to-back copies of a period of 80 characters or more, or three of a shorter one
    (``exact``); or, with every run of digits made equal, at least eight copies
    (``counting``). Whatever its finish: a counting loop can end by itself after 20 rows.
    It starts at its first repeated character (the start of the second copy).
    """
    text = "".join(pieces)
    period, span = periodic_tail(text, 3.0)
    if not span:
        period, span = periodic_tail(text, 2.0)
        span = span if period >= 80 else 0
    if span:
        return "loop", len(text) - span + period, "exact"
    # Every run of digits as one "0", remembering where each character came from.
    seen, origin = [], []
    for match in re.finditer(r"[0-9]+|[^0-9]", text):
        seen.append("0" if match.group()[0].isdigit() else match.group())
        origin.append(match.start())
    period, span = periodic_tail("".join(seen), 8.0)
    if span:
        return "loop", origin[len(seen) - span + period], "counting"
    return "normal", None, REVIEWED.get(rid, "")


async def _one(session: Any, engine: str, model: str, prompt: str, sampling: dict[str, Any],
               cap: int) -> tuple[list[str], str | None]:
    body = {"model": model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": cap, "stream": True, **sampling}
    pieces: list[str] = []
    finish = None
    async with session.post(engine + "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for raw in response.content:
            line = raw.strip()
            if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
                continue
            event = json.loads(line[5:])
            for choice in event.get("choices") or ():
                text = (choice.get("delta") or {}).get("content")
                if text:
                    pieces.append(text)
                finish = choice.get("finish_reason") or finish
    return pieces, finish


async def collect(args: argparse.Namespace) -> int:
    import aiohttp

    prompts = [json.loads(line) for line in OPEN.read_text(encoding="utf-8").splitlines()
               if line.strip()]
    engine = args.engine.rstrip("/")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1800)) as session:
        async with session.get(engine + "/v1/models") as response:
            model = args.model or (await response.json())["data"][0]["id"]
        jobs = []
        for item in prompts:
            jobs.append((item, "t0", {"temperature": 0.0}))
            jobs.extend((item, f"default{n}", {}) for n in range(args.samples))
        gate = asyncio.Semaphore(args.concurrency)
        done = 0

        async def run(item: dict[str, Any], how: str, sampling: dict[str, Any]) -> dict[str, Any]:
            nonlocal done
            async with gate:
                pieces, finish = await _one(session, engine, model, item["prompt"], sampling,
                                            args.cap)
            done += 1
            print(f"\r{done}/{len(jobs)}", end="", file=sys.stderr, flush=True)
            kind, start, loop_kind = label(pieces, finish)
            return {"id": f"{item['id']}-{how}", "prompt_id": item["id"], "lang": item["lang"],
                    "kind": item["answer"]["kind"], "sampling": how, "model": model,
                    "cap": args.cap, "finish": finish, "label": kind, "loop_kind": loop_kind,
                    "loop_start_char": start,
                    "pieces": pieces}

        records = await asyncio.gather(*(run(*job) for job in jobs))
    print(file=sys.stderr)
    ANSWERS.parent.mkdir(parents=True, exist_ok=True)
    mode = "a" if args.append else "w"
    with ANSWERS.open(mode, encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    loops = sum(r["label"] == "loop" for r in records)
    print(f"{len(records)} answers from {model}, {loops} labelled loop -> {ANSWERS}")
    return 0


_PIECE = re.compile(r"\s*\S{1,4}|\s+")


def pieces_of(text: str) -> list[str]:
    """A hand-made answer cut into token-sized pieces (about 4 characters each)."""
    return _PIECE.findall(text)


def replay(pieces: list[str], settings: LoopSettings) -> int | None:
    """The index of the piece after which the guard fires, or None."""
    guard = LoopGuard(settings)
    for index, piece in enumerate(pieces):
        if guard.feed(piece) is not None:
            return index
    return None


def load(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def evaluate(settings: LoopSettings, answers: list[dict[str, Any]],
             legit: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """The guard's figures on the labelled answers and the hand-made legitimate ones."""
    delays: list[int] = []
    missed: list[str] = []
    late: list[str] = []
    false_pos: list[str] = []
    normal = 0
    for record in answers:
        pieces = record["pieces"]
        fired = replay(pieces, settings)
        if record["label"] == "loop":
            start_char = record["loop_start_char"]
            offset, start_piece = 0, len(pieces)
            for index, piece in enumerate(pieces):
                if offset + len(piece) > start_char:
                    start_piece = index
                    break
                offset += len(piece)
            if fired is None:
                missed.append(record["id"])
                continue
            delay = max(0, fired - start_piece + 1)
            delays.append(delay)
            if delay > 64:
                late.append(record["id"])
        else:
            normal += 1
            if fired is not None:
                false_pos.append(record["id"])
    legit_fp = [r["id"] for r in legit if replay(pieces_of(r["text"]), settings) is not None]
    loops = len(delays) + len(missed)
    within = len(delays) - len(late)
    return {
        "settings": settings.__dict__, "loops": loops, "detected": len(delays),
        "within_64": within, "missed": missed, "late": late,
        "tokens_to_detection": {
            "median": statistics.median(delays) if delays else None,
            "p90": sorted(delays)[int(0.9 * (len(delays) - 1))] if delays else None,
            "max": max(delays) if delays else None},
        "normal": normal, "false_positives": false_pos,
        "legit": len(legit), "legit_false_positives": legit_fp,
    }


def relabel(args: argparse.Namespace) -> int:
    """Labels the saved answers again with :func:`label`, and prints what changed."""
    records = load(ANSWERS)
    for record in records:
        kind, start, loop_kind = label(record["pieces"], record["finish"], record["id"])
        if (kind, start) != (record["label"], record["loop_start_char"]):
            print(f"{record['id']}: {record['label']} -> {kind} ({loop_kind})")
        record.update(label=kind, loop_start_char=start, loop_kind=loop_kind)
    with ANSWERS.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


def measure(args: argparse.Namespace) -> int:
    settings = LoopSettings()
    for name in ("window", "repeats", "min_chars", "counting_repeats"):
        value = getattr(args, name)
        if value is not None:
            settings = replace(settings, **{name: value})
    result = evaluate(settings, load(ANSWERS), load(LEGIT))
    print(json.dumps(result, indent=1))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--engine", default="http://127.0.0.1:30000")
    c.add_argument("--model", default=None)
    c.add_argument("--cap", type=int, default=512)
    c.add_argument("--samples", type=int, default=2)
    c.add_argument("--concurrency", type=int, default=8)
    c.add_argument("--append", action="store_true")
    sub.add_parser("relabel")
    m = sub.add_parser("measure")
    for name in ("window", "repeats", "min_chars", "counting_repeats"):
        m.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=None)
    args = parser.parse_args()
    if args.command == "collect":
        return asyncio.run(collect(args))
    if args.command == "relabel":
        return relabel(args)
    return measure(args)


if __name__ == "__main__":
    sys.exit(main())

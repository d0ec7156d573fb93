"""``lkn eval``: measure the gateway's care on the bundled set (see README, "Care")."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from lkn.eval.arms import BASELINE, parse_arms
from lkn.eval.items import ITEMS_FILE, load_items
from lkn.eval.report import cells, table
from lkn.eval.runner import run

DEFAULT_ARMS = "fluido@greedy,gateway@greedy,fluido@webui,gateway@webui"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gateway", default=None,
                        help="gateway base URL (default: http://LKN_HOST:LKN_PORT)")
    parser.add_argument("--quick", action="store_true",
                        help="the quick subset (every eighth item of each category)")
    parser.add_argument("--arms", default=None,
                        help=f"comma-separated arms care@shape (default {DEFAULT_ARMS}; "
                             "with --choose the candidate interventions)")
    parser.add_argument("--items", type=Path, default=ITEMS_FILE, help="JSONL evaluation set")
    parser.add_argument("--category", action="append", default=[],
                        help="only this category (repeatable)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many items")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens per answer")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    parser.add_argument("--model", default=None, help="model name (default: the gateway's first)")
    parser.add_argument("--out", type=Path, default=Path("artifacts"), help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="arm order shuffling seed")
    parser.add_argument("--choose", action="store_true",
                        help="measure the interventions and write a policy file")
    parser.add_argument("--policy-out", type=Path, default=None,
                        help="where --choose writes the policy (default: OUT/policy.json)")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="--choose: significance an intervention must reach against FLUIDO")


def _get_json(url: str, api_key: str | None) -> Any:
    request = urllib.request.Request(url)
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def main(args: argparse.Namespace, host: str, port: int, api_key: str | None) -> int:
    import uvloop

    url = (args.gateway or f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}")
    url = url.rstrip("/")
    try:
        arms = parse_arms(args.arms or (CHOOSE_ARMS if args.choose else DEFAULT_ARMS))
        items = load_items(args.items, quick=args.quick)
    except (OSError, ValueError) as exc:
        print(f"lkn eval: {exc}", file=sys.stderr)
        return 2
    if args.category:
        items = [i for i in items if i.category in set(args.category)]
    if args.limit > 0:
        items = items[: args.limit]
    if not items:
        print("lkn eval: no item selected", file=sys.stderr)
        return 2
    if BASELINE not in {a.name for a in arms}:
        arms.insert(0, parse_arms(BASELINE)[0])
    try:
        ready = _get_json(url + "/ready", api_key)
        model = args.model or _get_json(url + "/v1/models", api_key)["data"][0]["id"]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        print(f"lkn eval: the gateway at {url} is not ready ({exc})", file=sys.stderr)
        return 1
    names = [a.name for a in arms]
    print(f"lkn eval: {len(items)} items x {len(arms)} arms against {url} ({model}), "
          f"max_tokens={args.max_tokens}, concurrency={args.concurrency}", file=sys.stderr)
    started = time.time()
    records = uvloop.run(run(url, items, arms, model=model, max_tokens=args.max_tokens,
                             concurrency=args.concurrency, timeout=args.timeout,
                             api_key=api_key, seed=args.seed))
    elapsed = time.time() - started
    all_cells = cells(records, names)
    text = table(all_cells, names)
    print(text)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(started))
    kind = "quick" if args.quick else "full"
    args.out.mkdir(parents=True, exist_ok=True)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "elapsed_s": elapsed, "gateway": url, "model": model, "ready": ready,
        "set": str(args.items), "subset": kind, "items": len(items), "arms": names,
        "max_tokens": args.max_tokens, "concurrency": args.concurrency,
        "cells": [c.to_json() for c in all_cells],
        "records": [r.to_json() for r in records],
    }
    json_path = args.out / f"eval-{kind}-{stamp}.json"
    json_path.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    (args.out / f"eval-{kind}-{stamp}.txt").write_text(text + "\n", encoding="utf-8")
    print(f"\nfigures: {json_path}  ({elapsed / 60:.1f} min)", file=sys.stderr)
    try:
        from lkn.eval.plot import plot

        png = plot(all_cells, names, args.out / f"eval-{kind}-{stamp}.png",
                   f"{model}: {len(items)} items ({kind}), max_tokens {args.max_tokens}")
        print(f"plot:    {png}", file=sys.stderr)
    except ImportError:
        print("lkn eval: matplotlib is not installed, no plot (pip install matplotlib)",
              file=sys.stderr)
    if args.choose:
        from lkn.eval.choose import choose_policy

        policy_path = args.policy_out or args.out / "policy.json"
        policy = choose_policy(records, model=model, alpha=args.alpha, source=json_path.name)
        policy_path.parent.mkdir(parents=True, exist_ok=True)
        policy_path.write_text(json.dumps(policy, ensure_ascii=False, indent=1) + "\n",
                               encoding="utf-8")
        print(f"policy:  {policy_path}", file=sys.stderr)
    return 0


CHOOSE_ARMS = ("fluido@greedy,prompt@greedy,prompt:suffix@greedy,"
               "fluido@webui,sampling@webui,prompt@webui,sampling+prompt@webui")

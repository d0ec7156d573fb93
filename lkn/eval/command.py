"""``lkn eval``: measure the gateway's care on the bundled set (see README, "Care")."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lkn.eval.arms import BASELINE, Arm, parse_arms
from lkn.eval.items import ITEMS_FILE, OPEN_FILE, Item, load_items, parse_slice, sliced
from lkn.eval.report import (
    Cell,
    OpenCell,
    cells,
    open_cells,
    open_table,
    signal_cells,
    signal_table,
    table,
)
from lkn.eval.runner import Record, item_signals_of, run

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
    parser.add_argument("--open-items", type=Path, default=OPEN_FILE,
                        help="JSONL open chat prompts, graded for degeneration")
    parser.add_argument("--no-open", action="store_true",
                        help="short answers only (no open chat prompts)")
    parser.add_argument("--category", action="append", default=[],
                        help="only this category (repeatable)")
    parser.add_argument("--limit", type=int, default=0, help="at most this many items")
    parser.add_argument("--slice", default=None,
                        help="a/b: the items whose index in their category is a modulo b "
                             "(--quick is 0/8)")
    parser.add_argument("--from", dest="from_runs", type=Path, action="append", default=[],
                        help="no requests: report (and --choose) from saved eval JSON files; "
                             "repeatable: runs are pooled, records of the same item and arm: "
                             "the last wins")
    parser.add_argument("--held-out-from", dest="held_out_from", type=Path, action="append",
                        default=[],
                        help="with --from: report only the items these saved runs did not "
                             "measure (e.g. the runs a policy was chosen on); repeatable")
    parser.add_argument("--max-tokens", type=int, default=64, help="max_tokens per answer")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    parser.add_argument("--model", default=None, help="model name (default: the gateway's first)")
    parser.add_argument("--out", type=Path, default=Path("artifacts"), help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="arm order shuffling seed")
    _choose_arguments(parser)


def _choose_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``--choose``."""
    parser.add_argument("--choose", action="store_true",
                        help="measure the interventions and write a policy file")
    parser.add_argument("--policy-out", type=Path, default=None,
                        help="where --choose writes the policy (default: OUT/policy.json)")
    parser.add_argument("--saved-signals", action="store_true",
                        help="--choose --from: group by the signals saved with each run and "
                             "keep compositions with the others (as policies chosen before "
                             "the form signal were)")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="--choose: significance an intervention must reach against FLUIDO")


def _authorised(request: urllib.request.Request, api_key: str | None) -> urllib.request.Request:
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    return request


def _get_json(url: str, api_key: str | None) -> Any:
    request = _authorised(urllib.request.Request(url), api_key)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _saved(paths: list[Path], current: bool = True
           ) -> tuple[list[Record], list[Record], list[str], str]:  # fmt: skip
    """Saved runs pooled: the records for the report, all records, the report's arms, model.

    A run's gateway arm is named after the intervention it got (:func:`as_measured`).
    Records of the same item and arm: the last wins; different items are pooled. The report
    covers the items answered in every arm (or, when none is, in the arms every run
    measured); ``--choose`` gets every record (it pairs each candidate with FLUIDO on the
    items both measured).
    """
    from lkn.eval.choose import as_measured

    prompts = _bundled_prompts() if current else {}
    merged: dict[tuple[str, str], Record] = {}
    union: list[str] = []
    common: list[str] | None = None
    model = ""
    for path in paths:
        data = json.loads(path.read_text(encoding="utf-8"))
        model = data.get("model", model)
        run = as_measured([_resignalled(Record(**raw), prompts) for raw in data["records"]])
        arms = list(dict.fromkeys(r.arm for r in run))
        union += [a for a in arms if a not in union]
        common = arms if common is None else [a for a in common if a in arms]
        for record in run:
            merged[(record.item, record.arm)] = record
    items = {r.item for r in merged.values()}
    for names in (union, common or []):
        keep = {i for i in items if all((i, a) in merged for a in names)}
        if keep:
            break
    report = [r for r in merged.values() if r.item in keep and r.arm in names]
    return report, list(merged.values()), names, model


def _bundled_prompts() -> dict[str, str]:
    """Item id -> prompt, for every set bundled with the harness."""
    return {item.id: item.prompt for path in sorted(ITEMS_FILE.parent.glob("*.jsonl"))
            for item in load_items(path)}


def _resignalled(record: Record, prompts: dict[str, str]) -> Record:
    """A saved record with the signals today's rules see in its item (a policy is chosen
    for the rules that will apply it); an item no bundled set holds keeps its saved ones."""
    prompt = prompts.get(record.item)
    if prompt is not None:
        record.signals = item_signals_of(prompt)
    return record


def _items_of(paths: list[Path]) -> set[str]:
    """The ids of the items the saved runs at ``paths`` measured."""
    return {raw["item"] for path in paths
            for raw in json.loads(path.read_text(encoding="utf-8"))["records"]}


def _write(args: argparse.Namespace, records: list[Record], names: list[str], model: str,
           kind: str, stamp: str, extra: dict[str, Any],
           measured: list[Record] | None = None) -> None:  # fmt: skip
    """The report printed and saved (JSON, text, plot) under ``args.out``, and with
    ``--choose`` the policy chosen on ``measured`` (default: ``records``)."""
    pooled = records if measured is None else measured
    all_cells = cells(records, names)
    sig_cells = signal_cells(records, names)
    chat_cells = open_cells(pooled, list(dict.fromkeys([*names, *(r.arm for r in pooled)])))
    text = _report_text(records, names, all_cells, sig_cells, chat_cells)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    base = args.out / f"eval-{kind}-{stamp}"
    result = {**extra, "model": model, "arms": names,
              "items": len({r.item for r in records}),
              "cells": [c.to_json() for c in all_cells],
              "signal_cells": [c.to_json() for c in sig_cells],
              "open_cells": [c.to_json() for c in chat_cells],
              "records": [r.to_json() for r in records]}
    json_path = base.with_suffix(".json")
    json_path.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    base.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    print(f"\nfigures: {json_path}", file=sys.stderr)
    _plot(all_cells, names, base.with_suffix(".png"), f"{model}: {result['items']} items ({kind})")
    if args.choose:
        _write_policy(args, pooled, model, json_path.name)


def _report_text(records: list[Record], names: list[str], all_cells: list[Cell],
                 sig_cells: list[Cell], chat_cells: list[OpenCell]) -> str:  # fmt: skip
    """The tables, and how many answers the homeostat shed (not measured as asked)."""
    text = table(all_cells, names) + "\n\n" + signal_table(sig_cells, names)
    if chat_cells:
        text += "\n\n" + open_table(chat_cells)
    shed = sum("shed" in r.headers.get("X-LKN-Policy", r.headers.get("x-lkn-policy", ""))
               for r in records)
    if shed:
        text += (f"\n\n{shed} answers had their care shed by the gateway's homeostat (see "
                 "X-LKN-Policy in the records): they were not measured as asked")
    return text


def _plot(all_cells: list[Cell], names: list[str], path: Path, title: str) -> None:
    try:
        from lkn.eval.plot import plot

        png = plot(all_cells, names, path, title)
        print(f"plot:    {png}", file=sys.stderr)
    except ImportError:
        print("lkn eval: matplotlib is not installed, no plot (pip install matplotlib)",
              file=sys.stderr)


def _write_policy(args: argparse.Namespace, measured: list[Record], model: str,
                  json_name: str) -> None:  # fmt: skip
    """``--choose``: the policy chosen on ``measured``, written to ``--policy-out``."""
    from lkn.eval.choose import choose_policy

    policy_path = args.policy_out or args.out / "policy.json"
    source = " + ".join(p.name for p in args.from_runs) if args.from_runs else json_name
    policy = choose_policy(measured, model=model, alpha=args.alpha, source=source,
                           apart=not args.saved_signals)
    policy_path.parent.mkdir(parents=True, exist_ok=True)
    policy_path.write_text(json.dumps(policy, ensure_ascii=False, indent=1) + "\n",
                           encoding="utf-8")
    print(f"policy:  {policy_path}", file=sys.stderr)


def _preflight(url: str, arms: list[Arm], model: str, ready: Any,
               api_key: str | None) -> str | None:  # fmt: skip
    """Why the gateway cannot measure these arms (None: it can). An arm that names its care
    needs a gateway that lets this client do so; shedding would change the care measured."""
    named = [a for a in arms if "X-LKN-Intervention" in a.headers]
    homeostat = ready.get("homeostat") if isinstance(ready, dict) else None
    points = homeostat.get("set_points") if isinstance(homeostat, dict) else None
    if isinstance(points, dict) and points.get("shedding") is True:
        print("lkn eval: warning: the gateway sheds care under load (LKN_SHED=false keeps the "
              "measured care as asked; shed answers are counted in the report)", file=sys.stderr)
    if not named:
        return None
    body = {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": "Hi"}]}
    request = _authorised(urllib.request.Request(
        url + "/v1/chat/completions", json.dumps(body).encode(),
        {"Content-Type": "application/json", **named[0].headers}), api_key)
    try:
        with urllib.request.urlopen(request, timeout=600) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 403:
            return (f"the gateway at {url} does not let clients name their care, which arm "
                    f"{named[0].name} does: start it with LKN_CLIENT_INTERVENTIONS=on, or pass "
                    "its LKN_CARE_API_KEY as the key")
    except OSError:
        return None  # the run itself reports what fails
    return None


def main(args: argparse.Namespace, host: str, port: int, api_key: str | None) -> int:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    if args.from_runs:
        return _report_saved(args, stamp)
    return _measure(args, host, port, api_key, stamp)


def _report_saved(args: argparse.Namespace, stamp: str) -> int:
    """``--from``: the report (and ``--choose``) from saved runs, no request sent."""
    try:
        records, measured, names, model = _saved(args.from_runs, not args.saved_signals)
        if args.held_out_from:
            seen = _items_of(args.held_out_from)
            records = [r for r in records if r.item not in seen]
            measured = [r for r in measured if r.item not in seen]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"lkn eval: cannot read the saved runs ({exc})", file=sys.stderr)
        return 2
    if not records:
        print("lkn eval: the saved runs share no complete item"
              + (" outside --held-out-from" if args.held_out_from else ""), file=sys.stderr)
        return 2
    if BASELINE not in names:
        print(f"lkn eval: the saved runs have no {BASELINE} arm", file=sys.stderr)
        return 2
    _write(args, records, names, model, "saved", stamp,
           {"from": [p.name for p in args.from_runs],
            "held_out_from": [p.name for p in args.held_out_from]}, measured)
    return 0


def _selection(args: argparse.Namespace) -> tuple[list[Arm], list[Item]]:
    """The arms (FLUIDO first where not named) and the items asked for; ``ValueError`` or
    ``OSError`` says why there are none."""
    arms = parse_arms(args.arms or (CHOOSE_ARMS if args.choose else DEFAULT_ARMS))
    items = load_items(args.items, quick=args.quick)
    if not args.no_open:
        items += load_items(args.open_items, quick=args.quick)
    if args.category:
        items = [i for i in items if i.category in set(args.category)]
    if args.slice:
        items = sliced(items, *parse_slice(args.slice))
    if args.limit > 0:
        items = items[: args.limit]
    if not items:
        raise ValueError("no item selected")
    if BASELINE not in {a.name for a in arms}:
        arms.insert(0, parse_arms(BASELINE)[0])
    return arms, items


def _measure(args: argparse.Namespace, host: str, port: int, api_key: str | None,
             stamp: str) -> int:  # fmt: skip
    """Every selected item through every arm against the gateway, then the report."""
    url = (args.gateway or f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}")
    url = url.rstrip("/")
    try:
        arms, items = _selection(args)
    except (OSError, ValueError) as exc:
        print(f"lkn eval: {exc}", file=sys.stderr)
        return 2
    try:
        ready = _get_json(url + "/ready", api_key)
        model = args.model or _get_json(url + "/v1/models", api_key)["data"][0]["id"]
    except (OSError, ValueError, KeyError, IndexError) as exc:
        print(f"lkn eval: the gateway at {url} is not ready ({exc})", file=sys.stderr)
        return 1
    problem = _preflight(url, arms, model, ready, api_key)
    if problem:
        print(f"lkn eval: {problem}", file=sys.stderr)
        return 1
    _run_and_write(args, url, arms, items, model, ready, api_key, stamp)
    return 0


def _run_and_write(args: argparse.Namespace, url: str, arms: list[Arm], items: list[Item],
                   model: str, ready: Any, api_key: str | None, stamp: str) -> None:  # fmt: skip
    import uvloop

    chats = sum(i.open for i in items)
    print(f"lkn eval: {len(items) - chats} short items (max_tokens={args.max_tokens}) and "
          f"{chats} open chat prompts (no max_tokens) x {len(arms)} arms against {url} "
          f"({model}), concurrency={args.concurrency}", file=sys.stderr)
    started = time.time()
    records = uvloop.run(run(url, items, arms, model=model, max_tokens=args.max_tokens,
                             concurrency=args.concurrency, timeout=args.timeout,
                             api_key=api_key, seed=args.seed))
    elapsed = time.time() - started
    kind = "quick" if args.quick else ("slice" if args.slice else "full")
    _write(args, records, [a.name for a in arms], model, kind, stamp, {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "elapsed_s": elapsed, "gateway": url, "ready": ready, "set": str(args.items),
        "subset": kind, "slice": args.slice, "max_tokens": args.max_tokens,
        "concurrency": args.concurrency,
    })
    print(f"({elapsed / 60:.1f} min)", file=sys.stderr)


CHOOSE_ARMS = ("fluido@greedy,prompt@greedy,prompt:suffix@greedy,"
               "fluido@webui,sampling@webui,sampling:rp=1.2@webui,"
               "sampling:t=0.3,min_p=0.1@webui,prompt@webui,sampling+prompt@webui")

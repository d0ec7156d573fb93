"""Command line: ``lkn [serve]`` runs the gateway; ``lkn calibrate`` picks an entropy threshold;
``lkn eval`` measures the gateway's care on the bundled evaluation set."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from lkn.config import ConfigError, Settings, load_settings, parse_engines


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(env_file=args.env_file)
    except ConfigError as exc:
        print(f"lkn: configuration error: {exc}", file=sys.stderr)
        return 2

    from lkn import logs

    logs.configure(settings.log_level)
    if args.command == "calibrate":
        return _calibrate(args, settings)
    if args.command == "eval":
        from lkn.eval.command import main as eval_main

        return eval_main(args, settings.host, settings.port, settings.api_key)
    return _serve(settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lkn", description="L-kn homeostatic inference gateway")
    parser.add_argument("--env-file", help="env file to read (default: config/.env)")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the gateway (default)")
    _add_calibrate_arguments(sub.add_parser(
        "calibrate",
        help="probe a JSONL file of prompts and print the entropy threshold for a target rate",
    ))
    from lkn.eval.command import add_arguments

    add_arguments(sub.add_parser(
        "eval", help="measure accuracy and latency of the gateway's care on the bundled set"))
    return parser


def _add_calibrate_arguments(cal: argparse.ArgumentParser) -> None:
    cal.add_argument("prompts", type=Path,
                     help='JSONL file, one {"prompt": ...} or {"messages": [...]} per line')
    cal.add_argument("--target-rate", type=float, required=True,
                     help="wanted fraction of ANALITICO requests, e.g. 0.3")
    cal.add_argument("--engine", help="engine URL(s) to probe (default: LKN_ENGINE_URLS)")
    cal.add_argument("--top-k", type=int, help="top logprobs per token (default: LKN_PROBE_TOP_K)")
    cal.add_argument("--tokens", type=int, help="tokens per probe (default: LKN_PROBE_TOKENS)")
    cal.add_argument("--timeout", type=float, default=30.0, help="seconds per probe (default 30)")
    cal.add_argument("--concurrency", type=int, default=4, help="probes in flight (default 4)")


def _serve(settings: Settings) -> int:
    """Run the gateway: in this process, or in ``LKN_WORKERS`` worker processes."""
    import uvloop

    from lkn.server import serve

    if settings.workers > 1:
        from lkn.workers import run_workers

        return run_workers(settings, lambda s: uvloop.run(serve(s)))
    uvloop.run(serve(settings))
    return 0


def _calibrate(args: argparse.Namespace, settings: Settings) -> int:
    import uvloop

    from lkn.decision.calibrate import calibrate, report
    from lkn.survey import load_prompts, survey, survey_settings

    if not 0.0 <= args.target_rate <= 1.0:
        print("lkn calibrate: --target-rate must be between 0 and 1", file=sys.stderr)
        return 2
    if args.top_k is not None and not 1 <= args.top_k <= 20:
        print("lkn calibrate: --top-k must be between 1 and 20", file=sys.stderr)
        return 2
    if args.tokens is not None and not 1 <= args.tokens <= 16:
        print("lkn calibrate: --tokens must be between 1 and 16", file=sys.stderr)
        return 2
    try:
        if args.engine:
            settings = replace(settings, engines=parse_engines(args.engine))
        requests = load_prompts(args.prompts)
    except (OSError, ValueError) as exc:
        print(f"lkn calibrate: {exc}", file=sys.stderr)
        return 2
    settings = survey_settings(settings, args.top_k, args.tokens, args.timeout)
    result = uvloop.run(survey(settings, requests, max(1, args.concurrency)))
    for reason, count in sorted(result.failures.items()):
        print(f"lkn calibrate: {count} prompt(s) not scored: {reason}", file=sys.stderr)
    if not result.scores:
        print("lkn calibrate: no prompt could be scored", file=sys.stderr)
        return 1
    decision = settings.decision
    print(f"engines: {', '.join(e.url for e in settings.engines)}  "
          f"top_k={decision.probe_top_k} tokens={decision.probe_tokens}")
    print(report(calibrate(result.scores, args.target_rate), result.scores))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``lkn [serve]`` runs the gateway."""

from __future__ import annotations

import argparse
import sys

from lkn.config import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lkn", description="L-kn homeostatic inference gateway")
    parser.add_argument("--env-file", help="env file to read (default: config/.env)")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the gateway (default)")
    args = parser.parse_args(argv)

    try:
        settings = load_settings(env_file=args.env_file)
    except ConfigError as exc:
        print(f"lkn: configuration error: {exc}", file=sys.stderr)
        return 2

    from lkn import logs

    logs.configure(settings.log_level)
    import uvloop

    from lkn.server import serve

    uvloop.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())

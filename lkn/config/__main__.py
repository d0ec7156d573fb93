"""``python -m lkn.config --export ENV_FILE``: the env file's lines as shell exports
(scripts/lib/common.sh), so that the scripts and the gateway read the file one way."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

from lkn.config.parse import read_env_file
from lkn.config.settings import ConfigError


def export_lines(path: Path, environ: Mapping[str, str]) -> list[str]:
    """``export KEY='value'`` for each variable of the env file not already in ``environ``."""
    return [f"export {key}={shlex.quote(value)}"
            for key, value in read_env_file(path).items() if key not in environ]


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "--export":
        sys.exit("usage: python -m lkn.config --export ENV_FILE")
    try:
        print("\n".join(export_lines(Path(argv[1]), os.environ)))
    except (ConfigError, OSError, UnicodeDecodeError) as exc:
        sys.exit(f"lkn: configuration error: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

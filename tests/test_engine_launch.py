"""scripts/start_engine.sh --check: the exact SGLang command line and what would be installed.

No GPU is needed: ``--check`` resolves the device path, locates (never builds) the cached
environment and prints the command, then exits without starting anything.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.livestack import ROOT, free_port, script_env

pytestmark = pytest.mark.fast

GPU_REQUIREMENTS = ROOT / "scripts" / "engine" / "requirements-sglang-gpu.txt"


def check(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = script_env(tmp_path / "logs", LKN_CACHE=str(tmp_path / "cache"), **env)
    for key in list(base):
        if key.startswith("ENGINE_") and key not in env:
            del base[key]
    return subprocess.run(
        ["bash", str(ROOT / "scripts" / "start_engine.sh"), "--check"],
        cwd=ROOT, env=base, capture_output=True, text=True, timeout=60,
    )


def field(output: str, name: str) -> str:
    for line in output.splitlines():
        if line.startswith(name + ": "):
            return line[len(name) + 2:]
    raise AssertionError(f"no '{name}:' line in:\n{output}")


def venv_of(result: subprocess.CompletedProcess[str]) -> str:
    env_line = field(result.stdout, "environment")
    return env_line.split(" ", 1)[0]


def test_gpu_command_line_is_exact_and_nothing_starts(tmp_path: Path) -> None:
    port = free_port()
    result = check(
        tmp_path, ENGINE_DEVICE="gpu", ENGINE_MODEL="Qwen/Qwen2.5-3B-Instruct-AWQ",
        ENGINE_MEM_FRACTION="0.7", ENGINE_HOST="::", ENGINE_PORT=str(port),
        ENGINE_API_KEY="engine-secret-123", ENGINE_EXTRA_ARGS="--context-length 8192",
    )
    assert result.returncode == 0, result.stderr
    venv = venv_of(result)
    assert venv.startswith(str(tmp_path / "cache" / "venvs" / "sglang-gpu-"))
    assert "not built yet" in result.stdout
    assert field(result.stdout, "device") == "gpu"
    assert field(result.stdout, "url").startswith(f"http://[::1]:{port} ")
    assert shlex.split(field(result.stdout, "command")) == [
        f"{venv}/bin/python", "-m", "sglang.launch_server",
        "--model-path", "Qwen/Qwen2.5-3B-Instruct-AWQ",
        "--mem-fraction-static", "0.7",
        "--host", "::", "--port", str(port),
        "--served-model-name", "Qwen/Qwen2.5-3B-Instruct-AWQ",
        "--api-key", "<ENGINE_API_KEY>",
        "--context-length", "8192",
    ]
    # The key itself is never printed; what would be installed is.
    assert "engine-secret-123" not in result.stdout + result.stderr
    assert "requirements-sglang-gpu.txt" in field(result.stdout, "would install")
    for pin in ("sglang==0.5.23", "torch==2.14.1", "sglang-kernel==", "flashinfer-python=="):
        assert pin in result.stdout
    # Nothing was built, started or written.
    assert not (tmp_path / "cache" / "venvs").exists()
    assert not list((tmp_path / "logs").glob("engine*"))
    with socket.socket(socket.AF_INET6) as sock:
        assert sock.connect_ex(("::1", port)) != 0


def test_gpu_defaults_follow_the_seed(tmp_path: Path) -> None:
    result = check(tmp_path, ENGINE_DEVICE="gpu", LKN_ENV_FILE=os.devnull)
    assert result.returncode == 0, result.stderr
    argv = shlex.split(field(result.stdout, "command"))
    assert argv[argv.index("--model-path") + 1] == "Qwen/Qwen2.5-3B-Instruct-AWQ"
    assert argv[argv.index("--mem-fraction-static") + 1] == "0.85"
    assert argv[argv.index("--port") + 1] == "30000"
    assert "--api-key" not in argv


def test_engine_python_replaces_the_cached_environment(tmp_path: Path) -> None:
    result = check(tmp_path, ENGINE_DEVICE="gpu", ENGINE_PYTHON="python3")
    assert result.returncode == 0, result.stderr
    assert "ENGINE_PYTHON=python3" in result.stdout and "would install" not in result.stdout
    assert shlex.split(field(result.stdout, "command"))[:3] == [
        "python3", "-m", "sglang.launch_server"]


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="the default without a GPU")
def test_without_a_gpu_the_default_is_qwen_on_llamacpp(tmp_path: Path) -> None:
    # Chosen by measurement (docs/models.md): more right answers and faster for one user.
    result = check(tmp_path, LKN_ENV_FILE=os.devnull)
    assert result.returncode == 0, result.stderr
    assert field(result.stdout, "kind") == "llamacpp"
    assert field(result.stdout, "served model") == "Qwen2.5-Coder-0.5B-Instruct"
    assert "qwen2.5-coder-0.5b" in field(result.stdout, "model")
    assert "no GPU: serving Qwen2.5-Coder-0.5B-Instruct" in result.stderr
    # Asking for the CPU (SGLang's device) still gets SmolLM2 on SGLang.
    sglang = check(tmp_path, LKN_ENV_FILE=os.devnull, ENGINE_DEVICE="cpu")
    assert field(sglang.stdout, "kind") == "sglang"
    assert field(sglang.stdout, "served model") == "SmolLM2-135M-Instruct"


def test_cpu_command_line(tmp_path: Path) -> None:
    result = check(tmp_path, ENGINE_DEVICE="cpu", ENGINE_HOST="0.0.0.0",
                   ENGINE_API_KEY="k")
    assert result.returncode == 0, result.stderr
    assert field(result.stdout, "url").startswith("http://127.0.0.1:30000 ")
    command = field(result.stdout, "command")
    argv = shlex.split(command)
    assert argv[:3] == ["SGLANG_USE_CPU_ENGINE=1", f"PYTHONPATH={ROOT}/scripts/engine",
                        "HF_HUB_OFFLINE=1"]
    assert argv[3].endswith("/bin/python") and "/sglang-cpu-" in argv[3]
    for flag in ("--device cpu", "--attention-backend torch_native", "--host 0.0.0.0",
                 "--max-total-tokens 16384", "--sleep-on-idle", "--dtype float32"):
        assert flag in command
    assert argv[argv.index("--api-key") + 1] == "<ENGINE_API_KEY>"


def test_unknown_argument_is_refused(tmp_path: Path) -> None:
    base = script_env(tmp_path)
    result = subprocess.run(["bash", str(ROOT / "scripts" / "start_engine.sh"), "--chek"],
                            cwd=ROOT, env=base, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "--check" in result.stderr


def test_gpu_requirements_are_a_pinned_list() -> None:
    pins = [line for line in GPU_REQUIREMENTS.read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert pins and all(line.count("==") == 1 and " " not in line for line in pins), pins
    names = [line.split("==")[0].lower().replace("_", "-") for line in pins]
    assert len(names) == len(set(names))
    assert {"sglang", "torch", "sglang-kernel", "flashinfer-python"} <= set(names)
    cpu = (ROOT / "scripts" / "engine" / "requirements-sglang-cpu.txt").read_text()
    assert "sglang==0.5.23" in cpu and "sglang==0.5.23" in pins
    assert "torch==2.14.1" in cpu and "torch==2.14.1" in pins

"""The stack scripts' PID-file handling, with a real (light) engine: llama.cpp via xllamacpp."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.livestack import ROOT, LiveEngine, free_port, http_status, script_env

pytestmark = pytest.mark.e2e


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ROOT / "scripts" / script)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_dead_pid_file_is_cleaned_and_a_live_one_is_never_started_twice(tmp_path: Path) -> None:
    engine = LiveEngine("llamacpp", tmp_path, start_timeout=180)
    env = engine.env()
    # A PID file left by a crash: the process is gone.
    dead = subprocess.Popen(["true"])
    dead.wait()
    engine.pid_file.write_text(f"{dead.pid}\n")
    started = run("start_engine.sh", env)
    assert started.returncode == 0, started.stderr
    assert "stale PID file" in started.stderr
    assert http_status(engine.url + "/health") == 200
    pid = engine.pid()
    assert pid != dead.pid

    again = run("start_engine.sh", env)
    assert again.returncode == 0 and "already running" in again.stderr
    assert engine.pid() == pid, "a live engine must not be started twice"
    assert again.stdout.strip() == engine.url

    stopped = run("stop_engine.sh", env)
    assert stopped.returncode == 0 and not engine.pid_file.exists()
    assert http_status(engine.url + "/health") == 0
    # Stopping again is harmless.
    assert run("stop_engine.sh", env).returncode == 0


def test_pid_reused_by_another_program_is_not_killed(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "gateway.pid").write_text(f"{other.pid}\n")
        env = script_env(tmp_path)
        result = run("stop_gateway.sh", env)
        assert result.returncode == 0 and "stale PID file" in result.stderr
        assert other.poll() is None, "an unrelated process must survive"
        assert not (tmp_path / "gateway.pid").exists()
    finally:
        other.kill()
        other.wait()


def test_gateway_scripts_start_once_and_stop(tmp_path: Path) -> None:
    port = free_port()
    env = script_env(tmp_path, LKN_PORT=str(port), LKN_GRPC_PORT=str(free_port()),
                     LKN_ENGINE_URLS="http://127.0.0.1:9")
    first = run("start_gateway.sh", env)
    assert first.returncode == 0, first.stderr
    assert "no engine is ready" in first.stderr
    assert http_status(f"http://127.0.0.1:{port}/health") == 200
    second = run("start_gateway.sh", env)
    assert second.returncode == 0 and "already running" in second.stderr
    assert run("stop_gateway.sh", env).returncode == 0
    assert http_status(f"http://127.0.0.1:{port}/health") == 0


def test_bad_configuration_stops_start_up_with_the_variable_name(tmp_path: Path) -> None:
    env = script_env(tmp_path, LKN_PORT=str(free_port()), LKN_ENTROPY_THRESHOLD="high")
    result = run("start_gateway.sh", env)
    assert result.returncode != 0
    assert "LKN_ENTROPY_THRESHOLD" in result.stderr

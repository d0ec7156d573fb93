"""LKN_WORKERS: several gateway processes share the REST and gRPC ports (SO_REUSEPORT)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from lkn._proto.lkn.v1 import gateway_pb2_grpc as pb_grpc
from scripts.lib.benchkit import start_double
from tests.livestack import ROOT, free_port, http_status, script_env

pytestmark = pytest.mark.fast

CHAT = b'{"model":"smollm2","messages":[{"role":"user","content":"hi"}],"max_tokens":4}'


@pytest.fixture
def double_url(tmp_path: Path) -> Iterator[str]:
    double, url = start_double("double", tmp_path, env=script_env(tmp_path))
    try:
        yield url
    finally:
        double.stop(grace=10.0)


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def engine_connections(pid: int, engine_port: int) -> int:
    """Established TCP connections process ``pid`` holds to ``engine_port`` (Linux /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote_port = int(fields[2].split(":")[1], 16)
        if remote_port == engine_port and fields[3] == "01" and fields[9] in inodes:
            count += 1
    return count


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_two_workers_share_both_ports_and_stop_together(double_url: str, tmp_path: Path) -> None:
    port, grpc_port = free_port(), free_port()
    env = script_env(tmp_path, LKN_ENGINE_URLS=double_url, LKN_PORT=str(port),
                     LKN_GRPC_PORT=str(grpc_port), LKN_WORKERS="2", LKN_HEALTH_INTERVAL="0.5")
    log = open(tmp_path / "gateway.log", "wb")
    parent = subprocess.Popen([sys.executable, "-m", "lkn", "serve"], cwd=ROOT, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while len(children(parent.pid)) < 2 or http_status(f"http://127.0.0.1:{port}/ready") != 200:
            assert parent.poll() is None, (tmp_path / "gateway.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "gateway.log").read_text()
            time.sleep(0.2)
        workers = children(parent.pid)
        engine_port = int(double_url.rsplit(":", 1)[1])
        # New connections are spread by the kernel: send until both workers have served
        # (each keeps its own keep-alive connection to the engine afterwards).
        for _ in range(200):
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/chat/completions", data=CHAT,
                headers={"Content-Type": "application/json", "Connection": "close"})
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
            if all(engine_connections(w, engine_port) > 0 for w in workers):
                break
        assert all(engine_connections(w, engine_port) > 0 for w in workers), \
            "one worker never served a request"
        # gRPC on the shared port too.
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = pb_grpc.GatewayStub(channel)
            events = list(stub.Generate(pb.GenerateRequest(prompt="hi"), timeout=10))
        assert events[0].WhichOneof("event") == "start"
        assert events[-1].WhichOneof("event") == "finish"
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(30) == 0
        assert all(not Path(f"/proc/{w}").exists() or _zombie(w) for w in workers)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        log.close()


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_a_worker_that_cannot_start_stops_the_set(tmp_path: Path) -> None:
    with socket.socket() as taken:  # a port held by an unrelated process, no SO_REUSEPORT
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = script_env(tmp_path, LKN_ENGINE_URLS="http://127.0.0.1:9",
                         LKN_PORT=str(taken.getsockname()[1]), LKN_GRPC_ENABLED="false",
                         LKN_WORKERS="2")
        result = subprocess.run([sys.executable, "-m", "lkn", "serve"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "worker exited unexpectedly" in result.stderr


def test_workers_need_fixed_ports(tmp_path: Path) -> None:
    env = script_env(tmp_path, LKN_PORT="0", LKN_WORKERS="2")
    result = subprocess.run([sys.executable, "-m", "lkn", "serve"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "fixed ports" in result.stderr

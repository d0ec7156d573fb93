"""The README's first command, as a newcomer without a GPU runs it: ``bash scripts/start_all.sh``.

Nothing chosen: it starts the CPU default (Qwen2.5-Coder-0.5B-Instruct on llama.cpp), the
gateway with its shipped policies and Open WebUI, runs the smoke test, and says where to
open the browser; a chat there streams an answer. Only the ports, the log directory and
llama.cpp's thread count (one is fastest on two busy cores) are set; ``stop_all.sh`` stops
it all. What the model answers is never checked, only that there is an answer.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.conftest import Browse, LiveWebUI, browser_on
from tests.livestack import ROOT, free_port, get_json

pytestmark = [
    pytest.mark.browser, pytest.mark.timeout(3600),
    pytest.mark.skipif(shutil.which("nvidia-smi") is not None,
                       reason="the newcomer's default without a GPU"),
]

QWEN = "Qwen2.5-Coder-0.5B-Instruct"


def _env(logs: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ENGINE_", "LKN_", "WEBUI_"))}
    empty = logs / "empty.env"  # no config/.env: the defaults
    empty.write_text("")
    env.update(
        LKN_LOG_DIR=str(logs), LKN_ENV_FILE=str(empty),
        LKN_PORT=str(free_port()), LKN_GRPC_PORT=str(free_port()),
        WEBUI_PORT=str(free_port()), ENGINE_LLAMACPP_PORT=str(free_port()),
        ENGINE_LLAMACPP_THREADS="1", ENGINE_START_TIMEOUT="900",
    )
    return env


@pytest.fixture(scope="module")
def started(browser_logs: Path) -> Iterator[tuple[dict[str, str], str]]:
    logs = browser_logs / "start_all"
    logs.mkdir(parents=True, exist_ok=True)
    env = _env(logs)
    try:
        result = subprocess.run(["bash", str(ROOT / "scripts" / "start_all.sh")], cwd=ROOT,
                                env=env, capture_output=True, text=True, timeout=2400)
        (logs / "start_all.out").write_text(result.stdout + result.stderr)
        assert result.returncode == 0, result.stderr[-4000:]
        yield env, result.stdout + result.stderr
    finally:
        subprocess.run(["bash", str(ROOT / "scripts" / "stop_all.sh")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def browse_default(browser_setup: None, started: tuple[dict[str, str], str],
                   browser_logs: Path) -> Browse:  # fmt: skip
    env, said = started
    [url] = re.findall(r"chat\s+(http://\S+)\s+<- open this", said)
    return browser_on(LiveWebUI(url, env), browser_logs / "start_all")


def test_the_plain_start_serves_qwen_on_llama_cpp_and_a_chat_streams(
    started: tuple[dict[str, str], str], browse_default: Browse,
) -> None:
    env, said = started
    assert "no GPU: serving Qwen2.5-Coder-0.5B-Instruct on llama.cpp" in said
    assert "L-kn is up." in said and "✗" not in said and "✓" in said  # the smoke test
    gateway = f"http://127.0.0.1:{env['LKN_PORT']}"
    models = get_json(gateway + "/v1/models")
    assert isinstance(models, dict) and QWEN in [m["id"] for m in models["data"]]
    ready = get_json(gateway + "/ready")
    assert isinstance(ready, dict)
    # The shipped policy for this model is in force.
    assert any(p.get("model") == QWEN for p in ready["care"]["policies"]), ready["care"]

    result = browse_default("start_all_chat", "Tell me a short story about a kind robot.",
                            model=QWEN, timeout_s=900)
    assert result["model_shown"] == QWEN
    assert result["error_text"] == ""
    assert result["answer"].strip(), "the reply is empty"
    assert result["partials"] >= 1, "the answer appeared at once, not streamed"

"""Configuration that refuses nonsense, each hole with its test."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lkn.config import (
    ConfigError,
    DecisionSettings,
    HomeostatSettings,
    PlacementSettings,
    Settings,
    load_settings,
)

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parent.parent


EMPTY = Path(tempfile.mkdtemp()) / "empty.env"
EMPTY.write_text("")


def load(**env: str) -> Settings:
    return load_settings(env, env_file=EMPTY)


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity", "1e999"])
@pytest.mark.parametrize("name", ["LKN_SHUTDOWN_GRACE", "LKN_READ_TIMEOUT", "LKN_REQUEST_TIMEOUT",
                                  "LKN_ENTROPY_THRESHOLD", "LKN_IDLE_TIMEOUT"])
def test_numbers_must_be_finite(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load(**{name: value})


@pytest.mark.parametrize(("raw", "url"), [
    ("http://127.0.0.1:30000/v1", "http://127.0.0.1:30000"),
    ("http://127.0.0.1:30000/v1/", "http://127.0.0.1:30000"),
    ("HTTP://LocalHost:30000/", "http://localhost:30000"),
    ("openai=http://10.0.0.2:8080/V1", "http://10.0.0.2:8080"),
])
def test_engine_urls_are_normalised_and_v1_is_never_doubled(raw: str, url: str) -> None:
    (spec,) = load(LKN_ENGINE_URLS=raw).engines
    assert spec.url == url


@pytest.mark.parametrize("raw", ["http://127.0.0.1:30000/api", "http://h:1/v1/chat",
                                 "http://h:1/?x=1", "http://user:pw@h:1", "ftp://h:1"])
def test_engine_urls_with_another_path_are_refused_clearly(raw: str) -> None:
    with pytest.raises(ConfigError, match="LKN_ENGINE_URLS"):
        load(LKN_ENGINE_URLS=raw)


@pytest.mark.parametrize("raw", [
    "http://127.0.0.1:30000,http://127.0.0.1:30000/",
    "http://127.0.0.1:30000,http://127.0.0.1:30000/v1",
    "http://localhost:80,http://LOCALHOST",
    "http://127.0.0.1:30000,openai=http://127.0.0.1:30000",
])
def test_the_same_engine_twice_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="same engine"):
        load(LKN_ENGINE_URLS=raw)


def test_an_unknown_lkn_name_stops_the_start_naming_the_closest_known_name() -> None:
    with pytest.raises(ConfigError, match=r"LKN_SHUTDOWN_GRACEE .*did you mean "
                                          r"LKN_SHUTDOWN_GRACE\?"):
        load(LKN_SHUTDOWN_GRACEE="5", LKN_LOG_DIR="/tmp", ENGINE_MODEL="x")
    assert load(LKN_PORT="8001", LKN_LOG_DIR="/tmp", ENGINE_MODEL="x").port == 8001


def test_a_misspelt_api_key_stops_the_start_instead_of_running_keyless(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"LKN_APIKEY .*did you mean LKN_API_KEY\?"):
        load(LKN_APIKEY="secret")
    # ... in the env file too.
    env_file = tmp_path / ".env"
    env_file.write_text("LKN_PORT=8001\nLKN_API_KEYS=secret\n")
    with pytest.raises(ConfigError, match=r"LKN_API_KEYS .*did you mean LKN_API_KEY\?"):
        load_settings({}, env_file=env_file)


def _names_set_by_the_project() -> set[str]:
    """Every LKN_* name the scripts, tests, compose file and example env file mention."""
    names: set[str] = set()
    places = [*(ROOT / "scripts").rglob("*"), *(ROOT / "tests").rglob("*"),
              ROOT / "docker-compose.yml", ROOT / "config" / ".env.example"]
    for path in places:
        if path.is_file() and path.suffix in ("", ".py", ".sh", ".yml", ".example", ".md"):
            names.update(re.findall(r"\bLKN_[A-Z0-9_]*[A-Z0-9]\b",
                                    path.read_text(encoding="utf-8", errors="replace")))
    return names


#: Names that tests use on purpose as misspellings.
MISSPELT = {"LKN_SHUTDOWN_GRACEE", "LKN_APIKEY", "LKN_API_KEYS"}


def test_no_name_the_scripts_or_tests_set_is_refused() -> None:
    names = _names_set_by_the_project() - MISSPELT
    assert {"LKN_INSTALL", "LKN_ROOT", "LKN_LOG_DIR", "LKN_ENV_FILE", "LKN_WITH_WEBUI",
            "LKN_CACHE", "LKN_FOREGROUND"} <= names
    # Empty values are read as unset, but the names are there (an empty key is refused).
    env = {name: "" for name in names - {"LKN_API_KEY"}}
    load_settings(env, env_file=EMPTY)


def test_the_grpc_host_defaults_to_loopback_not_to_the_rest_host() -> None:
    settings = load(LKN_HOST="0.0.0.0")
    assert settings.host == "0.0.0.0" and settings.grpc_host == "127.0.0.1"
    assert load(LKN_HOST="0.0.0.0", LKN_GRPC_HOST="0.0.0.0").grpc_host == "0.0.0.0"


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_api_key_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="LKN_API_KEY is set but empty"):
        load(LKN_API_KEY=value)
    assert load().api_key is None


def test_every_default_is_written_once() -> None:
    """Loading an empty environment gives exactly the dataclasses' defaults."""
    loaded = load()
    assert loaded == Settings()
    assert loaded.decision == DecisionSettings()
    assert loaded.decision.homeostat == HomeostatSettings()
    assert loaded.placement == PlacementSettings()
    source = (ROOT / "lkn" / "config" / "load.py").read_text(encoding="utf-8")
    body = source[source.index("def load_settings"):]
    for field in dataclasses.fields(Settings):
        default = field.default
        if isinstance(default, (int, float)) and not isinstance(default, bool) and default > 1:
            assert f'", {default!r}' not in body, field.name


async def test_the_request_timeout_bounds_grpc_calls_with_a_deadline_too() -> None:
    from lkn.engines.client import HttpEngineClient

    settings = dataclasses.replace(Settings(), request_timeout=2.0)
    client = HttpEngineClient(settings.engines[0], settings)
    try:
        timeout = client._timeout(time.monotonic() + 600.0)  # a 10-minute client deadline
        assert timeout.total is not None and timeout.total <= 2.0
        timeout = client._timeout(time.monotonic() + 0.5)
        assert timeout.total is not None and timeout.total <= 0.5
    finally:
        await client.close()


def test_the_scripts_read_the_env_file_through_the_python_loader(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text('LKN_PORT="8123 "\nexport LKN_HOST=127.0.0.2\n'
                   "LKN_LOG_LEVEL='debug'\n# LKN_GRPC_PORT=1\nLKN_MODE=homeostatic\n"
                   "LKN_INTERVENTION_PROMPT='Check it; then $(echo answer) `x`'\n")
    script = (f'. "{ROOT}/scripts/lib/common.sh"; LKN_MODE=passthrough; export LKN_MODE; '
              f'lkn_load_env "{env}"; printf "%s|%s|%s|%s|%s|%s" "$LKN_PORT" "$LKN_HOST" '
              '"$LKN_LOG_LEVEL" "${LKN_GRPC_PORT-unset}" "$LKN_MODE" "$LKN_INTERVENTION_PROMPT"')
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin", "LKN_PYTHON": sys.executable,
                              "HOME": str(tmp_path), "LKN_LOG_DIR": str(tmp_path)})
    port, host, level, grpc_port, mode, prompt = out.stdout.split("|")
    python = load_settings({}, env_file=env)
    assert port == "8123 "  # the quoted value with its trailing space, as the gateway reads it
    assert python.port == 8123
    assert (host, level, grpc_port, mode) == ("127.0.0.2", "debug", "unset", "passthrough")
    assert prompt == python.decision.intervention == "Check it; then $(echo answer) `x`"

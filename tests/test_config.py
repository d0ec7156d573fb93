"""Settings: environment, env file, defaults, and errors that name the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from lkn.config import ConfigError, EngineSpec, load_settings

pytestmark = pytest.mark.fast


def test_defaults_match_the_contract(tmp_path: Path) -> None:
    s = load_settings({}, env_file=_empty(tmp_path))
    assert s.engines == (EngineSpec("http://127.0.0.1:30000"),)
    assert (s.host, s.port, s.grpc_port) == ("127.0.0.1", 8000, 50051)
    assert (s.breaker_failures, s.breaker_reset) == (5, 30.0)
    assert s.engine_model == "Qwen/Qwen2.5-3B-Instruct-AWQ"
    assert s.engine_mem_fraction == 0.85
    d = s.decision
    assert (d.mode, d.strategy, d.entropy_threshold, d.probe_top_k, d.max_tokens_fluido) == (
        "homeostatic", "rules", 0.6, 10, 150)
    assert s.api_key is None


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.env"
    path.write_text("")
    return path


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# comment\nexport LKN_PORT=9000\nLKN_ENTROPY_THRESHOLD='0.7'\n"
        'LKN_ENGINE_URLS="http://a:1, openai=http://b:2/"\nLKN_API_KEY=secret\n'
    )
    s = load_settings({"LKN_PORT": "9100"}, env_file=env)
    assert s.port == 9100
    assert s.decision.entropy_threshold == 0.7
    assert s.engines == (EngineSpec("http://a:1"), EngineSpec("http://b:2", "openai"))
    assert s.api_key == "secret"


def test_env_file_from_variable(tmp_path: Path) -> None:
    env = tmp_path / "x.env"
    env.write_text("LKN_MODE=passthrough\n")
    assert load_settings({"LKN_ENV_FILE": str(env)}).decision.mode == "passthrough"


def test_missing_explicit_env_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LKN_ENV_FILE"):
        load_settings({"LKN_ENV_FILE": str(tmp_path / "nope")})


@pytest.mark.parametrize(
    "name,value",
    [
        ("LKN_PORT", "eighty"),
        ("LKN_PORT", "70000"),
        ("LKN_ENTROPY_THRESHOLD", "1.5"),
        ("LKN_PROBE_TOP_K", "0"),
        ("LKN_DECISION_STRATEGY", "vibes"),
        ("LKN_MODE", "turbo"),
        ("LKN_ENGINE_URLS", "localhost:30000"),
        ("LKN_ENGINE_URLS", "grpc=http://a:1"),
        ("LKN_ENGINE_URLS", "http://a:1,http://a:1"),
        ("LKN_BREAKER_FAILURES", "0"),
        ("LKN_SHADOW", "maybe"),
        ("ENGINE_MEM_FRACTION", "2"),
        ("LKN_MAX_BODY_BYTES", "12"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({name: value}, env_file=_empty(tmp_path))
    assert name in str(info.value)


def test_malformed_env_file_line(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("LKN_PORT 8000\n")
    with pytest.raises(ConfigError, match=":1:"):
        load_settings({}, env_file=env)


def test_shipped_example_env_file_is_valid() -> None:
    example = Path(__file__).resolve().parents[1] / "config" / ".env.example"
    settings = load_settings({}, env_file=example)
    assert settings.port == 8000

"""docker-compose.yml: valid structure, safe defaults, wired to the gateway."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.livestack import ROOT

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_services_and_profiles(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"open-webui", "engine", "gateway"}
    assert "profiles" not in services["open-webui"], "Open WebUI runs without a profile"
    assert services["engine"]["profiles"] == ["gpu"]
    assert services["gateway"]["profiles"] == ["gpu"]
    assert services["gateway"]["depends_on"]["engine"]["condition"] == "service_healthy"
    for name, service in services.items():
        assert "image" in service, name
        assert service["healthcheck"]["test"][0] == "CMD", name
    for volume in ("open-webui", "huggingface"):
        assert volume in compose["volumes"]


def test_every_port_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), (name, port)


def test_open_webui_reaches_a_gateway_on_the_hosts_loopback(compose: dict[str, Any]) -> None:
    # On Linux host.docker.internal cannot reach a gateway bound to 127.0.0.1: Open WebUI
    # shares the host's network instead, and listens on its loopback only.
    webui = compose["services"]["open-webui"]
    assert webui["network_mode"] == "host" and "ports" not in webui
    env = webui["environment"]
    assert env["HOST"] == "127.0.0.1"
    assert env["OPENAI_API_BASE_URL"] == (
        "${WEBUI_OPENAI_API_BASE_URL:-http://127.0.0.1:${LKN_PORT:-8000}/v1}")
    assert "extra_hosts" not in webui
    assert webui["healthcheck"]["test"][-1] == "http://127.0.0.1:${WEBUI_PORT:-3000}/health"
    gateway = compose["services"]["gateway"]
    assert "127.0.0.1:${LKN_PORT:-8000}:8000" in gateway["ports"]


def test_open_webui_settings_follow_the_contract(compose: dict[str, Any]) -> None:
    env = compose["services"]["open-webui"]["environment"]
    assert env["ENABLE_OPENAI_API"] == "True" and env["ENABLE_OLLAMA_API"] == "False"
    # Without this, Open WebUI loads an embedding model from a hub at start-up.
    assert env["RAG_EMBEDDING_ENGINE"] == "openai"
    assert '"usage":true' in env["DEFAULT_MODEL_METADATA"]


def test_engine_uses_the_seed_settings(compose: dict[str, Any]) -> None:
    engine = compose["services"]["engine"]
    command = " ".join(engine["command"].split())
    assert "sglang.launch_server" in command
    for flag in ("--model-path ${ENGINE_MODEL", "--mem-fraction-static ${ENGINE_MEM_FRACTION",
                 "--served-model-name", "${ENGINE_API_KEY:+--api-key ${ENGINE_API_KEY}}"):
        assert flag in command
    assert engine["image"] == "lmsysorg/sglang:v0.5.23"
    devices = engine["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia"
    gateway = compose["services"]["gateway"]
    assert gateway["environment"]["LKN_ENGINE_URLS"] == "http://engine:30000"
    assert gateway["environment"]["ENGINE_API_KEY"] == "${ENGINE_API_KEY:-}"
    assert "lkn serve" in gateway["command"]


def test_the_gateway_container_listens_where_its_ports_are_published(
    compose: dict[str, Any],
) -> None:
    """Inside its container the gateway binds every interface, gRPC included (gRPC does not
    follow LKN_HOST); the host publishes both ports on its loopback only, which the default
    host allow-list (127.0.0.1) accepts."""
    gateway = compose["services"]["gateway"]
    env = gateway["environment"]
    assert env["LKN_HOST"] == "0.0.0.0" and env["LKN_GRPC_HOST"] == "0.0.0.0"
    assert "127.0.0.1:${LKN_GRPC_PORT:-50051}:50051" in gateway["ports"]
    assert "LKN_ALLOWED_HOSTS" not in env

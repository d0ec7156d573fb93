"""Reading values: the env file, typed lookups that name the variable on error, and the
parsers of the list-valued settings (engines, origins, hosts)."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from lkn.config.settings import ENGINE_KINDS, ConfigError, EngineSpec

T = TypeVar("T")


class Reader:
    """Typed lookups of the settings' names, remembering every name asked for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values
        #: Every name a setting was looked up under (the known names).
        self.asked: set[str] = set()

    def raw(self, name: str) -> str | None:
        self.asked.add(name)
        value = self._values.get(name)
        if value is None:
            return None
        value = value.strip()
        return value if value != "" else None

    def get(self, name: str, default: T, parse: Callable[[str], T], rule: str) -> T:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            detail = f" ({exc})" if str(exc) else ""
            raise ConfigError(f"{name}={raw!r} is invalid: expected {rule}{detail}") from None

    def text(self, name: str, default: str) -> str:
        return self.get(name, default, str, "text")

    def integer(self, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        def parse(raw: str) -> int:
            value = int(raw)
            if value < minimum or (maximum is not None and value > maximum):
                raise ValueError("out of range")
            return value

        upper = f" and <= {maximum}" if maximum is not None else ""
        return self.get(name, default, parse, f"an integer >= {minimum}{upper}")

    def number(
        self, name: str, default: float, minimum: float = 0.0, maximum: float | None = None
    ) -> float:
        def parse(raw: str) -> float:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError("not a finite number")
            if value < minimum or (maximum is not None and value > maximum):
                raise ValueError("out of range")
            return value

        upper = f" and <= {maximum}" if maximum is not None else ""
        return self.get(name, default, parse, f"a finite number >= {minimum}{upper}")

    def flag(self, name: str, default: bool) -> bool:
        def parse(raw: str) -> bool:
            lowered = raw.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("")

        return self.get(name, default, parse, "true or false")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        def parse(raw: str) -> str:
            lowered = raw.lower()
            if lowered not in choices:
                raise ValueError("")
            return lowered

        return self.get(name, default, parse, "one of " + ", ".join(choices))


def parse_engines(raw: str) -> tuple[EngineSpec, ...]:
    """``[kind=]url[,[kind=]url...]`` -> engine specs; kind is ``sglang`` (default) or ``openai``.

    A URL is the engine's base (``http://host:port``); a trailing ``/v1`` is accepted and
    dropped (the gateway adds the API paths itself), any other path is refused. Two URLs
    naming the same host and port are refused.
    """
    specs: list[EngineSpec] = []
    seen: dict[tuple[str, int], str] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        kind = "sglang"
        if "=" in item.split("://", 1)[0]:
            kind, item = (part.strip() for part in item.split("=", 1))
            if kind not in ENGINE_KINDS:
                raise ValueError(f"unknown engine kind {kind!r}")
        url, where = normalise_engine_url(item)
        if where in seen:
            raise ValueError(f"{item!r} and {seen[where]!r} are the same engine")
        seen[where] = item
        specs.append(EngineSpec(url=url, kind=kind))
    if not specs:
        raise ValueError("no engine URL")
    return tuple(specs)


def normalise_engine_url(item: str) -> tuple[str, tuple[str, int]]:
    """The base URL (lower-case scheme and host, no ``/v1``) and its (host, port)."""
    parts = urlsplit(item)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{item!r} is not an http(s) URL")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{item!r} has a bad port") from None
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{item!r} must be a plain http(s)://host:port URL")
    path = parts.path.rstrip("/")
    if path.lower() == "/v1":
        path = ""
    if path:
        raise ValueError(f"{item!r} has the path {parts.path!r}: give the engine's base URL "
                         "(http://host:port; the gateway adds /v1/... itself)")
    scheme = parts.scheme.lower()
    host = parts.hostname.lower()
    if port is None:
        port = 443 if scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    netloc = shown if parts.port is None else f"{shown}:{port}"
    return f"{scheme}://{netloc}", (host, port)


def parse_origins(raw: str) -> tuple[str, ...]:
    """``*`` or comma-separated ``scheme://host[:port]`` origins, as browsers send them."""
    origins: list[str] = []
    for item in raw.split(","):
        item = item.strip().rstrip("/")
        if not item:
            continue
        if item != "*":
            parts = urlsplit(item)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
                raise ValueError(f"{item!r} is not an origin")
        origins.append(item)
    return tuple(origins)


_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?\.?")


def parse_hosts(raw: str) -> tuple[str, ...]:
    """``*`` or comma-separated host names and addresses, as a Host header names them
    (lower case, IPv6 in brackets or not; no scheme, no port)."""
    hosts: list[str] = []
    for item in raw.split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item != "*":
            bare = item[1:-1] if item.startswith("[") and item.endswith("]") else item
            try:
                ipaddress.IPv6Address(bare)
            except ValueError:
                if bare != item or not _HOST_NAME.fullmatch(bare):
                    raise ValueError(f"{item!r} is not a host name or address "
                                     "(no scheme, no port)") from None
        hosts.append(item)
    if not hosts:
        raise ValueError("no host")
    return tuple(hosts)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a ``KEY=value`` env file (``#`` comments, optional quotes, optional ``export``)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise ConfigError(f"{path}:{number}: expected KEY=value, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


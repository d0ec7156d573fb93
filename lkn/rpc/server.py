"""The grpc.aio server: the gateway servicer, standard health checking and server reflection.

It runs on the caller's event loop, beside the REST server, over the same :class:`Gateway`.
Health (``grpc.health.v1.Health``) follows the pool's readiness for ``""`` and
``lkn.v1.Gateway``. Reflection answers both ``grpc.reflection.v1alpha`` (what grpcurl 1.8
speaks) and ``grpc.reflection.v1`` (with the API key, when one is set). Connections, calls,
streams and connection age are bounded as :mod:`lkn.rpc.bounds` says.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from lkn._proto.lkn.v1 import gateway_pb2, gateway_pb2_grpc
from lkn.config import Settings
from lkn.gateway import Gateway
from lkn.rpc.bounds import ReflectionKey, max_calls, server_options
from lkn.rpc.decode import DecodeGuard
from lkn.rpc.servicer import GatewayServicer

log = logging.getLogger(__name__)

# The documented asyncio servicers; the modules do not re-export them explicitly for mypy.
HealthServicer = health.aio.HealthServicer  # type: ignore[attr-defined]
ReflectionServicer = reflection.aio.ReflectionServicer  # type: ignore[attr-defined]

SERVICE = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name
_REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
_Register = Callable[[object, grpc.aio.Server], None]


class _Health(Protocol):
    """What is used of grpc_health's asyncio HealthServicer."""

    async def set(self, service: str, status: int) -> None: ...

    async def enter_graceful_shutdown(self) -> None: ...


def _register(add: object, servicer: object, server: grpc.aio.Server) -> None:
    # The generated add_*_to_server functions are untyped.
    cast(_Register, add)(servicer, server)


def _serve_reflection_v1(servicer: object, server: grpc.aio.Server) -> None:
    # grpc.reflection.v1 is v1alpha renamed: the same messages, field for field, so the
    # v1alpha servicer answers it unchanged (grpcio-reflection only ships v1alpha).
    handler = grpc.stream_stream_rpc_method_handler(
        getattr(servicer, "ServerReflectionInfo"),
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(_REFLECTION_V1, {"ServerReflectionInfo": handler}),)
    )


class RpcServer:
    """A started gRPC server; :meth:`stop` drains it."""

    def __init__(
        self, server: grpc.aio.Server, health: _Health, port: int,
        gateway: Gateway, interval: float,
    ) -> None:  # fmt: skip
        self.server = server
        self.port = port
        self._health = health
        self._gateway = gateway
        self._interval = interval
        self._serving: bool | None = None
        self._watch: asyncio.Task[None] | None = None

    async def _publish(self) -> None:
        serving = self._gateway.ready()
        if serving == self._serving:
            return
        self._serving = serving
        value = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ("", SERVICE):
            await self._health.set(name, value)
        log.info("grpc health serving=%s", serving)

    async def _follow_readiness(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self._publish()
            except Exception:  # a bug here must not stop the updates
                log.exception("grpc health update failed")

    async def start(self) -> None:
        await self._publish()
        await self.server.start()
        self._watch = asyncio.get_running_loop().create_task(self._follow_readiness())

    async def stop(self, grace: float) -> None:
        """Refuse new calls, let calls in flight finish for up to ``grace`` s, then cancel them."""
        if self._watch is not None:
            self._watch.cancel()
            try:
                await self._watch
            except asyncio.CancelledError:
                pass
        await self._health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def start_rpc(gateway: Gateway, settings: Settings) -> RpcServer:
    """Build and start the gRPC server on ``settings.grpc_host:grpc_port`` (0: any free port)."""
    server = grpc.aio.server(
        options=server_options(settings),
        interceptors=[ReflectionKey(gateway), DecodeGuard(gateway)],
        maximum_concurrent_rpcs=max_calls(settings),
    )
    _register(gateway_pb2_grpc.add_GatewayServicer_to_server, GatewayServicer(gateway), server)
    health_servicer = HealthServicer()
    _register(health_pb2_grpc.add_HealthServicer_to_server, health_servicer, server)
    reflector = ReflectionServicer(
        (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME)
    )
    _register(reflection_pb2_grpc.add_ServerReflectionServicer_to_server, reflector, server)
    _serve_reflection_v1(reflector, server)

    host = settings.grpc_host
    address = f"[{host}]:{settings.grpc_port}" if ":" in host else f"{host}:{settings.grpc_port}"
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise OSError(f"cannot listen for gRPC on {address}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen for gRPC on {address}")
    rpc = RpcServer(server, health_servicer, port, gateway, settings.health_interval)
    await rpc.start()
    log.info("grpc listening host=%s port=%d", host, port)
    return rpc

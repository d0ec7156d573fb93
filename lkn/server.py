"""Build the gateway once; run the REST (and gRPC) front-ends on one loop; stop gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from lkn.breaker import Clock
from lkn.config import Settings
from lkn.gateway import Gateway
from lkn.rest import create_app
from lkn.rest.limits import BoundedSite, ConnectionGuard
from lkn.rpc import RpcServer, start_rpc

log = logging.getLogger(__name__)

#: Seconds after the grace period for the final error events to reach the clients.
_FINAL_WRITES = 1.0


@dataclass
class Running:
    gateway: Gateway
    rest_port: int
    grpc_port: int | None


@asynccontextmanager
async def running(settings: Settings, clock: Clock = time.monotonic) -> AsyncIterator[Running]:
    """Start everything, yield the bound ports, and shut down gracefully on exit."""
    gateway = await Gateway.start(settings, clock)
    # The gateway ends streams still open when the grace period is over (an error event,
    # gRPC UNAVAILABLE); the servers cancel whatever is left a moment later.
    hard_stop = settings.shutdown_grace + _FINAL_WRITES
    runner = web.AppRunner(
        create_app(gateway),
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=hard_stop,
    )
    await runner.setup()
    rpc: RpcServer | None = None
    try:
        guard = ConnectionGuard(settings, gateway.metrics.registry)
        site = BoundedSite(runner, guard, settings.host, settings.port, backlog=1024,
                           reuse_port=settings.workers > 1 or None)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        rest_port = sockets[0].getsockname()[1] if sockets else settings.port
        log.info("rest listening host=%s port=%d", settings.host, rest_port)
        if settings.grpc_enabled:
            rpc = await start_rpc(gateway, settings)
        yield Running(gateway, rest_port, rpc.port if rpc is not None else None)
    finally:
        try:
            # Both drain at once: calls and requests in flight get the same grace period.
            stops = [runner.cleanup(), gateway.drain(settings.shutdown_grace)]
            if rpc is not None:
                stops.append(rpc.stop(hard_stop))
            await asyncio.gather(*stops)
        finally:
            await gateway.close()


async def serve(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings) as run:
        engines = ", ".join(f"{settings.engine_name(e)}={e.url}" for e in settings.engines)
        grpc = f"{settings.grpc_host}:{run.grpc_port}" if run.grpc_port is not None else "off"
        log.info(
            "gateway ready rest=http://%s:%d grpc=%s engines=%s strategy=%s mode=%s",
            settings.host, run.rest_port, grpc, engines, settings.decision.strategy,
            settings.decision.mode,
        )
        await stop.wait()
        log.info("shutting down grace=%.1fs", settings.shutdown_grace)

"""A minimal aiohttp pass-through proxy: the reference scripts/bench.py measures the gateway
against (what forwarding alone costs on this machine, with the same server stack).

    python scripts/passthrough_proxy.py --upstream http://127.0.0.1:30000 [--port 0]

Forwards POST /v1/chat/completions and /v1/completions to the upstream unchanged and relays
the answer (streamed bodies as they arrive). No decisions, no metrics, no logs, no retries.
Prints ``READY <url>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import aiohttp
import uvloop
from aiohttp import web

UPSTREAM = web.AppKey("upstream", str)
SESSION = web.AppKey("session", aiohttp.ClientSession)


async def forward(request: web.Request) -> web.StreamResponse:
    session = request.app[SESSION]
    body = await request.read()
    async with session.post(request.app[UPSTREAM] + request.path, data=body,
                            headers={"Content-Type": "application/json"}) as upstream:  # fmt: skip
        if upstream.headers.get("Content-Type", "").startswith("text/event-stream"):
            response = web.StreamResponse(status=upstream.status,
                                          headers={"Content-Type": "text/event-stream"})  # fmt: skip
            await response.prepare(request)
            async for data in upstream.content.iter_any():
                await response.write(data)
            await response.write_eof()
            return response
        return web.Response(status=upstream.status, body=await upstream.read(),
                            content_type="application/json")  # fmt: skip


async def serve(upstream: str, port: int) -> None:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/")
    connector = aiohttp.TCPConnector(limit=512, keepalive_timeout=30.0)
    app[SESSION] = aiohttp.ClientSession(connector=connector, auto_decompress=False)
    app.router.add_post("/v1/chat/completions", forward)
    app.router.add_post("/v1/completions", forward)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"READY http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await app[SESSION].close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(args.upstream, args.port))


if __name__ == "__main__":
    main()

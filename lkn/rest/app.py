"""The OpenAI REST/SSE surface on aiohttp: parse -> gateway -> render, nothing more."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from lkn.errors import BadRequest, BodyTooLarge, LknError, NoEngineAvailable, NotFound
from lkn.gateway import Gateway, new_request_id
from lkn.exchange import Exchange
from lkn.metrics import CONTENT_TYPE
from lkn.rest import access
from lkn.rest.access import bearer_token
from lkn.rest.body import read_json
from lkn.outcome import CLIENT_GONE_ERRORS
from lkn.rest.errors import (
    GATEWAY,
    INTERNAL_ERROR,
    REQUEST_ID,
    Handler,
    error_middleware,
    error_payload,
)
from lkn.rest.cors import Cors
from lkn.rest.cors import install as install_cors
from lkn.rest.hosts import HostGuard
from lkn.rest.reasoning import HEADER as REASONING_HEADER
from lkn.rest.reasoning import Delivery, decision_note, reasoning_field
from lkn.rest.render import decision_headers, decision_json, file_names_only, model_json
from lkn.rest import status_page
from lkn.rest.sse import EventStream
from lkn.values import GenerateRequest, JSONObject, JSONValue, Route

log = logging.getLogger(__name__)


_SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


async def _read_json(request: web.Request) -> JSONValue:
    settings = request.app[GATEWAY].settings
    return await read_json(request, settings.max_body_bytes, settings.body_timeout)


def _to_request(request: web.Request, route: Route, body: JSONValue) -> GenerateRequest:
    rid = new_request_id()
    request[REQUEST_ID] = rid
    headers = request.headers
    return request.app[GATEWAY].request(
        route, body, rid, mode=headers.get("X-LKN-Mode"),
        intervention=headers.get("X-LKN-Intervention"), token=bearer_token(request))


def _delivery(request: web.Request) -> Delivery:
    default = request.app[GATEWAY].settings.reasoning_field
    return Delivery(reasoning_field(request.headers.get(REASONING_HEADER), default), None)


async def _generate(request: web.Request, route: Route) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    req = _to_request(request, route, await _read_json(request))
    delivery = _delivery(request)
    note = gateway.settings.decision_note and route is Route.CHAT
    if not req.stream:
        async with gateway.complete(req) as answer:
            completion = answer.completion
            assert completion is not None
            if note:
                delivery.note = decision_note(answer.decision)
            response = web.Response(
                body=delivery.body(completion.raw) if route is Route.CHAT else completion.raw,
                content_type="application/json",
                headers=decision_headers(answer.decision, req.request_id, answer.engine),
            )
            await response.prepare(request)
            await response.write_eof()
        return response
    early = {**_SSE_HEADERS, "X-Request-Id": req.request_id}
    async with EventStream(request, gateway.settings.sse_keepalive, early) as events:
        try:
            async with gateway.stream(req) as answer:
                await events.open(decision_headers(answer.decision, req.request_id,
                                                   answer.engine))
                if note:
                    delivery.note = decision_note(answer.decision)
                await _relay(events, answer, delivery)
        except LknError as exc:
            if not events.started:  # nothing sent yet: a proper status code
                raise
            # A keep-alive already started the response: report it inside the stream.
            await events.finish(error_payload(exc), b"[DONE]")
    return events.response


async def _relay(events: EventStream, answer: Exchange, delivery: Delivery) -> None:
    """Chunks to SSE events. Once the headers are out, every failure ends the stream with
    one error event and then ``[DONE]``, never a cut or a second status line."""
    try:
        while True:
            try:
                chunks = await answer.next_batch()  # the events of one engine read
            except StopAsyncIteration:
                break
            for chunk in chunks:
                if delivery.note is not None:
                    note = delivery.note_event(chunk)
                    if note is not None:
                        events.hold(note)
                events.hold(delivery.payload(chunk))
            await events.flush(chunks[-1].more)
        tail: tuple[bytes, ...] = (b"[DONE]",)
    except LknError as exc:
        answer.fail(exc)
        tail = (error_payload(exc), b"[DONE]")
    except CLIENT_GONE_ERRORS:
        raise
    except Exception as exc:  # a bug after the headers: the lifecycle logs it once
        answer.fail(exc)
        tail = (error_payload(INTERNAL_ERROR), b"[DONE]")
    await events.finish(*tail)


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, Route.CHAT)


async def completions(request: web.Request) -> web.StreamResponse:
    return await _generate(request, Route.COMPLETION)


async def probe(request: web.Request) -> web.StreamResponse:
    """Return the decision a chat (or completions) body would get, without generating."""
    gateway = request.app[GATEWAY]
    body = await _read_json(request)
    is_prompt = isinstance(body, dict) and "messages" not in body and "prompt" in body
    req = _to_request(request, Route.COMPLETION if is_prompt else Route.CHAT, body)
    async with gateway.decision_only(req) as answer:
        decision = answer.decision
        response = web.json_response(
            {**decision_json(decision, req.request_id),
             "homeostat": gateway.decider.homeostat.state(),
             "care": _care(gateway)},
            headers=decision_headers(decision, req.request_id, None),
        )
        await response.prepare(request)
        await response.write_eof()
    return response


async def list_models(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    return web.json_response(
        {"object": "list", "data": [model_json(card) for card in gateway.models()]}
    )


async def get_model(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    wanted = request.match_info["model"]
    for card in gateway.models():
        if card.id == wanted:
            return web.json_response(model_json(card))
    raise NotFound(f"The model '{wanted}' does not exist", param="model", code="model_not_found")


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def _care(gateway: Gateway) -> JSONValue:
    """The care policy's state, its files named by their file names only: where the gateway
    is installed is nobody's business (``/ready`` answers without a key when none is set)."""
    chooser = gateway.decider.chooser
    policies = [p for p in (chooser.policy, *chooser.shipped) if p is not None]
    return file_names_only(chooser.state(), [p.source for p in policies] + [chooser.setting])


async def ready(request: web.Request) -> web.Response:
    """200 when the pool would admit a request now, else 503 (with Retry-After)."""
    gateway = request.app[GATEWAY]
    engines = [
        {
            "engine": e.name,
            "url": e.client.url,
            "ready": e.ready,
            "breaker": e.breaker.state.name.lower(),
            "in_flight": e.in_flight,
            "model": e.client.model_id,
        }
        for e in gateway.pool.engines
    ]
    homeostat = gateway.decider.homeostat.state()
    care = _care(gateway)
    s = gateway.settings
    answers: JSONObject = {"default_max_tokens": s.default_max_tokens or None,
                           "loop_guard": {"on": s.loop_guard, "window": s.loop.window,
                                          "repeats": s.loop.repeats,
                                          "min_chars": s.loop.min_chars,
                                          "counting_repeats": s.loop.counting_repeats},
                           "clients": {"interventions": s.client.interventions,
                                       "care_key": s.client.care_key is not None,
                                       "max_tokens": s.client.max_tokens,
                                       "max_n": s.client.max_n,
                                       "max_min_tokens": s.client.max_min_tokens,
                                       "max_vote": s.client.max_vote}}
    if gateway.ready():
        return web.json_response({"status": "ready", "engines": engines, "homeostat": homeostat,
                                  "care": care, "answers": answers})
    retry = gateway.pool.retry_after()
    error = NoEngineAvailable("no inference engine is ready", retry_after=retry)
    return web.json_response(
        {"status": "unavailable", "engines": engines, "homeostat": homeostat, "care": care,
         "answers": answers, "error": error.to_openai()},
        status=503,
        headers={"Retry-After": str(max(1, round(retry)))},
    )


async def metrics(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY]
    return web.Response(body=gateway.metrics.render(), headers={"Content-Type": CONTENT_TYPE})


def create_app(gateway: Gateway) -> web.Application:
    """The aiohttp application for one gateway (the caller owns the gateway's lifetime)."""
    cors = Cors(gateway.settings.cors_origins)
    hosts = HostGuard(gateway.settings)
    app = web.Application(
        # The Host check comes first: a request for another name reaches nothing else.
        middlewares=[hosts.middleware, cors.middleware, error_middleware,
                     access.auth_middleware],
        client_max_size=gateway.settings.max_body_bytes,
    )
    install_cors(app, cors)
    app[GATEWAY] = gateway
    access.install(app)
    status_page.install(app, gateway)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/lkn/probe", probe)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    return app


__all__ = ["GATEWAY", "create_app"]

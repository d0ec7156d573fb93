"""The ``lkn.v1.Gateway`` servicer: protobuf -> core request -> gateway -> protobuf."""

from __future__ import annotations

import logging
from typing import Any
from collections.abc import AsyncGenerator

import grpc

from lkn._proto.lkn.v1 import gateway_pb2 as pb
from lkn._proto.lkn.v1 import gateway_pb2_grpc
from lkn.gateway import Gateway, new_request_id
from lkn.rpc import convert, errors
from lkn.rpc.errors import bearer_token
from lkn.values import GenerateRequest

log = logging.getLogger(__name__)

FRONTEND = "grpc"


def _to_request(
    gateway: Gateway, message: convert.InputMessage,
    context: grpc.aio.ServicerContext[Any, Any], stream: bool,
) -> GenerateRequest:
    route, body = convert.request_body(message, stream)
    rid = new_request_id()
    if message.request_id:
        log.debug("grpc request rid=%s client_request_id=%s", rid, message.request_id)
    metadata = dict(context.invocation_metadata() or ())
    wanted = metadata.get("x-lkn-intervention")
    return gateway.request(route, body, rid, mode=convert.mode_override(message.mode),
                           intervention=wanted if isinstance(wanted, str) else None,
                           token=bearer_token(context), timeout=context.time_remaining())


class GatewayServicer(gateway_pb2_grpc.GatewayServicer):
    """Implements ``lkn.v1.Gateway`` on one :class:`Gateway`; errors are mapped by ``status``."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    @property
    def gateway(self) -> Gateway:
        return self._gateway

    @errors.stream
    async def Generate(
        self,
        request: pb.GenerateRequest,
        context: grpc.aio.ServicerContext[pb.GenerateRequest, pb.GenerateResponse],
    ) -> AsyncGenerator[pb.GenerateResponse, None]:
        # The call's deadline bounds the whole request, engine work included.
        req = _to_request(self._gateway, request, context, stream=True)
        async with self._gateway.stream(req, FRONTEND) as answer:
            yield convert.start(request.request_id, answer)
            async for chunk in answer:
                if chunk.text or chunk.reasoning or chunk.tool_calls:
                    yield convert.delta(chunk)
            yield convert.finish(answer)

    @errors.unary
    async def Probe(
        self,
        request: pb.ProbeRequest,
        context: grpc.aio.ServicerContext[pb.ProbeRequest, pb.ProbeResponse],
    ) -> pb.ProbeResponse:
        req = _to_request(self._gateway, request, context, stream=False)
        async with self._gateway.decision_only(req, FRONTEND) as answer:
            reply = pb.ProbeResponse(
                request_id=request.request_id,
                gateway_request_id=req.request_id,
                decision=convert.decision(answer.decision),
                homeostat=convert.homeostat(self._gateway.decider.homeostat.state()),
            )
        return reply

    @errors.unary
    async def ListModels(
        self,
        request: pb.ListModelsRequest,
        context: grpc.aio.ServicerContext[pb.ListModelsRequest, pb.ListModelsResponse],
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=[convert.model(c) for c in self._gateway.models()])

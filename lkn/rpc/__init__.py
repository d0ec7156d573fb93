"""The gRPC front-end (``lkn.v1.Gateway``): a grpc.aio servicer over the same core as REST."""

from lkn.rpc.client import StreamResult, chat_request, stream_generate
from lkn.rpc.server import RpcServer, start_rpc

__all__ = ["RpcServer", "StreamResult", "chat_request", "start_rpc", "stream_generate"]

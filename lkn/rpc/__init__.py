"""The gRPC front-end (``lkn.v1.Gateway``): a grpc.aio servicer over the same core as REST."""

from lkn.rpc.client import StreamResult, stream_generate
from lkn.rpc.server import RpcServer, start_rpc

__all__ = ["RpcServer", "StreamResult", "start_rpc", "stream_generate"]

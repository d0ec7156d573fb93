"""The one translation of gateway errors into gRPC status codes and trailing metadata."""

from __future__ import annotations

import grpc
import pytest

from lkn import errors
from lkn.errors import LknError, NoEngineAvailable, TooManyRequests
from lkn.rpc.errors import status_of

pytestmark = pytest.mark.fast


def every_error_class() -> list[type[LknError]]:
    found, todo = [], [LknError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted((c for c in found if c.__module__ == errors.__name__), key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", every_error_class(), ids=lambda c: c.__name__)
def test_every_error_has_a_status_code_and_its_message(cls: type[LknError]) -> None:
    code, details, metadata = status_of(cls("what went wrong"))
    assert code is grpc.StatusCode[cls.grpc_code]
    assert code is not grpc.StatusCode.OK
    assert details == "what went wrong"
    assert dict(metadata) == {"lkn-error-type": cls.openai_type}


def test_the_retry_delay_is_in_the_message_and_the_metadata() -> None:
    code, details, metadata = status_of(NoEngineAvailable("no engine", retry_after=2.5))
    assert code is grpc.StatusCode.UNAVAILABLE
    assert details == "no engine (retry after 2500 ms)"
    assert dict(metadata)["retry-after-ms"] == "2500"
    _, _, metadata = status_of(TooManyRequests("busy", retry_after=0.0001))
    assert dict(metadata)["retry-after-ms"] == "1"


def test_the_codes_match_the_documented_pairs() -> None:
    pairs = {(c.http_status, c.grpc_code) for c in every_error_class()}
    assert {(400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED"), (429, "RESOURCE_EXHAUSTED"),
            (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED"), (500, "INTERNAL")} <= pairs  # fmt: skip

"""The log handler: the lines of one turn of the event loop go out together, in order, and
nothing waits that must not (warnings, lines from other threads or outside a loop)."""

from __future__ import annotations

import asyncio
import io
import logging
import threading

import pytest

from lkn.logs import LineHandler, LogfmtFormatter

pytestmark = pytest.mark.fast


class CountingStream(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _logger(stream: CountingStream) -> tuple[logging.Logger, LineHandler]:
    handler = LineHandler(stream)
    handler.setFormatter(LogfmtFormatter())
    logger = logging.getLogger(f"lkn.test.lines.{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler


async def test_lines_of_one_turn_go_out_together_at_its_end() -> None:
    stream = CountingStream()
    logger, _ = _logger(stream)
    for i in range(5):
        logger.info("request rid=%s n=%d", f"r{i}", i)
    assert stream.getvalue() == ""  # still this turn
    await asyncio.sleep(0)  # the next turn of the loop
    lines = stream.getvalue().splitlines()
    assert [line[line.index("request"):] for line in lines] == [
        f"request rid=r{i} n={i}" for i in range(5)]
    assert stream.writes == 1


async def test_a_warning_flushes_at_once_and_keeps_the_order() -> None:
    stream = CountingStream()
    logger, _ = _logger(stream)
    logger.info("first")
    logger.warning("second")
    lines = stream.getvalue().splitlines()
    assert [line.rsplit(" ", 1)[-1] for line in lines] == ["first", "second"]
    await asyncio.sleep(0)  # the turn's flush finds nothing left and writes nothing more
    assert stream.getvalue().splitlines() == lines


async def test_many_waiting_lines_flush_before_the_turn_ends() -> None:
    stream = CountingStream()
    logger, _ = _logger(stream)
    for i in range(LineHandler.PENDING_LIMIT):
        logger.info("line n=%d", i)
    assert len(stream.getvalue().splitlines()) == LineHandler.PENDING_LIMIT


def test_outside_a_loop_a_line_is_written_at_once() -> None:
    stream = CountingStream()
    logger, _ = _logger(stream)
    logger.info("no loop here")
    assert stream.getvalue().endswith("no loop here\n")


async def test_a_line_from_another_thread_is_written_at_once() -> None:
    stream = CountingStream()
    logger, _ = _logger(stream)
    worker = threading.Thread(target=logger.info, args=("from a thread",))
    worker.start()
    worker.join()
    assert stream.getvalue().endswith("from a thread\n")


async def test_flush_writes_what_waits() -> None:
    stream = CountingStream()
    logger, handler = _logger(stream)
    logger.info("waiting")
    handler.flush()  # what logging.shutdown does at exit
    assert stream.getvalue().endswith("waiting\n")


def test_a_record_that_cannot_be_formatted_is_reported_not_raised(
        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    stream = CountingStream()
    logger, handler = _logger(stream)
    reported: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", reported.append)
    logger.info("%d", "not a number")  # the formatter falls back, getMessage raises
    assert len(reported) == 1 and stream.getvalue() == ""


def test_a_loop_that_stops_before_its_flush_does_not_hold_the_next_loops_lines() -> None:
    stream = CountingStream()
    logger, _ = _logger(stream)

    loop = asyncio.new_event_loop()
    loop.call_soon(logger.info, "first loop")  # its flush is due on the next turn ...
    loop.call_soon(loop.stop)  # ... which this loop never runs
    loop.run_forever()
    loop.close()
    assert stream.getvalue() == ""

    async def log_and_yield() -> None:
        logger.info("second loop")
        await asyncio.sleep(0)

    asyncio.run(log_and_yield())
    lines = stream.getvalue().splitlines()  # the second loop's turn wrote both
    assert len(lines) == 2 and lines[0].endswith(" first loop")
    assert lines[1].endswith(" second loop")

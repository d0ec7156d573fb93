"""Structured logging: one logfmt line per event (``ts=… level=… logger=… msg=…``).

Every text value formatted into a line is escaped (quoted when it holds a space, ``=``, a
quote or a control character), so a value a client chose (a request id, a model name) can
neither forge a line nor a key; a line never spans two lines.

The gateway writes one line per request, so a line is kept cheap: records carry no thread,
process or caller details (no line prints them), the timestamp's seconds are formatted once
per second, and the lines written during one turn of the event loop go out in one write
(:class:`LineHandler`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
import time
from typing import TextIO

#: A value with any other character is quoted.
_UNPLAIN = re.compile(r"[^A-Za-z0-9\-_.,:/@+*%()\[\]<>!?#~^&|;'$]")
#: Characters JSON leaves as they are that would still break a line or its encoding.
_ODD = re.compile("[\x7f\u0085\u2028\u2029\ud800-\udfff]")


def escape(value: str) -> str:
    """``value`` as a logfmt value: unchanged when plain, else double-quoted and escaped."""
    if value and _UNPLAIN.search(value) is None:
        return value
    quoted = json.dumps(value, ensure_ascii=False)  # escapes quotes, backslashes, controls
    return _ODD.sub(lambda odd: f"\\u{ord(odd.group()):04x}", quoted)


def _one_line(text: str) -> str:
    if "\n" not in text and "\r" not in text:
        return text
    return text.replace("\r", "\\r").replace("\n", "\\n")


_LEVELS = {level: logging.getLevelName(level).lower()
           for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR,
                         logging.CRITICAL)}


class LogfmtFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def _timestamp(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return self._stamp

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"ts={self._timestamp(record.created)}.{int(record.msecs):03d}Z "
            f"level={_LEVELS.get(record.levelno) or record.levelname.lower()} "
            f"logger={record.name} {_one_line(self._message(record))}"
        )
        if record.exc_info:
            line += " exc=" + escape(self.formatException(record.exc_info))
        return line

    @staticmethod
    def _message(record: logging.LogRecord) -> str:
        args = record.args
        if isinstance(args, tuple) and args:
            texts = [a for a in args if isinstance(a, str)]
            # Most lines hold only plain values: one search over them all says so.
            plain = all(texts) and _UNPLAIN.search("".join(texts)) is None
            safe = args if plain else tuple(escape(a) if isinstance(a, str) else a
                                            for a in args)
            try:
                return str(record.msg) % safe
            except (TypeError, ValueError):
                pass
        return record.getMessage()


class LineHandler(logging.StreamHandler[TextIO]):
    """Writes the lines of one turn of the event loop together, at the end of that turn.

    On the event loop's thread a line waits for the loop's next turn (a request's line is out
    within a millisecond of its end, and a burst of requests costs one write, not one each);
    a warning or worse, a line from another thread or from outside a loop, and the
    :data:`PENDING_LIMIT`-th waiting line flush at once, and so does logging's shutdown.
    """

    #: Waiting lines that flush at once.
    PENDING_LIMIT = 256

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        #: The loop a flush is due on (a loop that stopped first leaves it unrun: the next
        #: line on another loop schedules its own).
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._pending.append(self.format(record) + self.terminator)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING or len(self._pending) >= self.PENDING_LIMIT:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop in this thread: write it now
            self.flush()
            return
        if self._flush_on is not loop:
            self._flush_on = loop
            loop.call_soon(self._flush_turn)

    def _flush_turn(self) -> None:
        self.acquire()
        try:
            self._flush_on = None
            self.flush()
        finally:
            self.release()

    def flush(self) -> None:
        self.acquire()
        try:
            if self._pending:
                text, self._pending = "".join(self._pending), []
                self.stream.write(text)
            self.stream.flush()
        except Exception:  # noqa: BLE001 - a broken stderr must not break requests
            pass
        finally:
            self.release()


def configure(level: str) -> None:
    # What a record would otherwise look up on every line and no line prints (the logging
    # HOWTO's "Optimization": caller frame, thread, process).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LineHandler(sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log duplicates our request lines.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)

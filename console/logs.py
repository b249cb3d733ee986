"""The process's log lines: to stderr, written by a thread of their own (`setup_logging`).

`run --headless` logs through here (the console's own commands log into the Log pane instead);
the event loop only queues a record, so a slow or stalled stderr never holds up trading.
"""

from __future__ import annotations

import logging
import sys
from decimal import Decimal
from enum import Enum


def _hand_off(records) -> logging.Handler:
    """A `QueueHandler` that hands a record to the writer thread as it is when its arguments are
    plain immutable values (text, numbers, None: every line of a headless run), so the event loop
    neither formats nor copies it; anything else (a traceback, a mutable argument) is formatted
    on the loop, as the standard handler does. (`logging.handlers` is imported only here.)"""
    import logging.handlers

    class HandOff(logging.handlers.QueueHandler):
        def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
            args = record.args if isinstance(record.args, tuple) else None
            plain = isinstance(record.msg, str) and args is not None and all(map(_plain, args))
            if plain and record.exc_info is None and record.stack_info is None:
                return record
            return super().prepare(record)

    return HandOff(records)


_PLAIN_TYPES = frozenset({str, int, float, bool, Decimal, type(None)})


def _plain(value: object) -> bool:
    """Values whose text cannot change after the call: exact built-in types (a subclass may
    carry state its `__str__` reads) and enum members."""
    return type(value) in _PLAIN_TYPES or isinstance(value, Enum)


def setup_logging() -> None:
    """Log lines to stderr as before, but written by a thread of their own: the event loop only
    queues a record (`QueueHandler`), so a slow or stalled stderr never holds up trading. The
    queue is drained when the process exits. Like `logging.basicConfig`, nothing changes when
    the root logger has handlers already."""
    import atexit
    import logging.handlers
    import queue

    root = logging.getLogger()
    if root.handlers:
        return
    # The line names no thread, process or source line: a record need not look them up (finding
    # the caller's frame alone was a third of a record's cost, at three lines per signal).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, stderr, respect_handler_level=True)
    listener.start()
    atexit.register(listener.stop)
    root.addHandler(_hand_off(records))
    root.setLevel(logging.INFO)

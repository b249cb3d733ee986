"""`console.logs`: the handler that queues a headless core's log lines for the writer thread."""

from __future__ import annotations

import logging
import queue
from decimal import Decimal

from console.logs import _hand_off


def queued(*args, exc_info=None, msg="order %s %s %s"):
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    handler = _hand_off(records)
    record = logging.LogRecord("tradeconsole", logging.INFO, __file__, 1, msg, args, exc_info)
    handler.emit(record)
    return record, records.get_nowait()


def test_a_record_of_plain_values_goes_to_the_writer_as_it_is():
    record, out = queued("tc1", Decimal("0.001"), None)
    assert out is record and out.args == ("tc1", Decimal("0.001"), None)  # formatted by the writer
    assert out.getMessage() == "order tc1 0.001 None"


def test_a_mutable_argument_is_formatted_when_logged_not_when_written():
    fills = ["0.1"]
    _, out = queued("tc1", fills, 3)
    fills.append("0.2")  # changed after the call: the line says what it was
    assert out.getMessage() == "order tc1 ['0.1'] 3" and out.args is None


def test_a_traceback_is_formatted_on_the_spot():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        _, out = queued(exc_info=sys.exc_info(), msg="failed")
    assert "ValueError: boom" in out.getMessage() and out.exc_info is None

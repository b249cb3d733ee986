"""The acceptance run at a small scale, as the operator runs it: `tradeconsole emulator --faults`
and `tradeconsole run --headless --until-idle` as processes, with canary keys in the environment.

10 % of each fault hits the order creates here (the faults on lookups and cancels are driven
in-process by `test_executor_faults`; `acceptance.py` runs both at full scale by hand)."""

from __future__ import annotations

import pytest

from . import acceptance

pytestmark = pytest.mark.integration

ALL_FAULTS = {"timeout_after_accept", "error_before", "error_after", "rate_limit", "reset_after_accept", "invisible"}


def test_sixty_signals_through_ten_percent_of_every_fault_leave_a_clean_venue(tmp_path):
    outcome = acceptance.run(tmp_path, signals=60, probability=0.1, retry_after=0.3, creates_only=True, timeout=170)
    summary = outcome.summary()
    assert outcome.problems == [], summary
    assert outcome.run_exit == 0 and outcome.emulator_exit == 0
    assert summary["audit"]["ok"] and summary["audit"]["orders"] >= 55  # a market order may meet "price moved"
    assert set(outcome.record["faults"]["POST /api/v3/order"]) == ALL_FAULTS
    assert "audit clean" in outcome.outputs["emulator stdout"]

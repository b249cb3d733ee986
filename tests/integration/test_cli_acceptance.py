"""The acceptance run at a small scale, as the operator runs it: `tradeconsole emulator --faults`
and `tradeconsole run --headless --until-idle` as processes, with canary keys in the environment."""

from __future__ import annotations

import pytest

from . import acceptance

pytestmark = pytest.mark.integration


def test_a_headless_run_through_ten_percent_of_every_fault_leaves_a_clean_venue(tmp_path):
    outcome = acceptance.run(tmp_path, signals=24, probability=0.1, retry_after=0.3, timeout=170)
    summary = outcome.summary()
    assert outcome.problems == [], summary
    assert outcome.run_exit == 0 and outcome.emulator_exit == 0
    assert summary["audit"]["ok"] and summary["venue_orders"] == summary["signals"] == 24
    injected = {fault for table in outcome.record["faults"].values() for fault in table}
    assert {"timeout_after_accept", "error_before", "error_after", "rate_limit", "reset_after_accept"} <= injected
    assert "audit clean" in outcome.outputs["emulator stdout"]

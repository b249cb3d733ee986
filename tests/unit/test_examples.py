"""The example files the README points users at stay valid."""

from __future__ import annotations

from pathlib import Path

from executor.venue.faults import FaultPlan as EmulatorFaults

ROOT = Path(__file__).parent.parent.parent


def test_the_example_faults_file_loads_with_ten_percent_of_each_fault():
    faults = EmulatorFaults.load(ROOT / "examples" / "faults.json")
    assert faults.invisible_ms == 300
    assert "POST /api/v3/order" in faults.endpoints
    assert sorted(faults.endpoints["POST /api/v3/order"].values()) == [0.1] * 6

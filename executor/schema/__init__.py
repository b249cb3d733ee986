"""The signal format as a JSON Schema (`signal.schema.json`), shipped as package data.

The schema is for the programs that write signals (strategies, webhook senders) and for the
README; the executor itself validates with its pydantic models (`executor.models.Signal`,
`executor.signals.parse_signal`), which the tests keep in step with this file. `SIGNAL_SCHEMA` is
found with `importlib.resources`, so an installed wheel has it as a source checkout does.
"""

from __future__ import annotations

import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

SIGNAL_SCHEMA: Traversable = files(__name__) / "signal.schema.json"


def signal_schema() -> dict[str, Any]:
    """The schema as a JSON object."""
    return json.loads(SIGNAL_SCHEMA.read_text(encoding="utf-8"))

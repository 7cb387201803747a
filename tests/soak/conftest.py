"""The soak tests reuse the property tests' helper that wires the models' invariants in."""

from __future__ import annotations

import sys
from pathlib import Path

PROPERTY_TESTS = str(Path(__file__).resolve().parents[1] / "property")
if PROPERTY_TESTS not in sys.path:
    sys.path.insert(0, PROPERTY_TESTS)

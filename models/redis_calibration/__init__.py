"""Measure a real redis-server and write calibration values for the Redis model.

`rksim calibrate redis` reaches this package through the `rksim.calibrators` entry point
(pyproject.toml), so the core CLI never imports a model. See docs/calibration.md.
"""

from __future__ import annotations

from models.redis_calibration.calibration import (
    Calibration,
    calibrate,
    calibrate_server,
    run_command,
    validate_sections,
)

__all__ = ["Calibration", "calibrate", "calibrate_server", "run_command", "validate_sections"]

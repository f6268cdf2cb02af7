"""The shop world's data folder: ``world.json`` (its settings, economics and ground-truth summary) beside the
``train.parquet`` / ``test.parquet`` tables that ``nextbest shop generate`` writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nextbest.errors import NextbestError


def load_world_meta(directory: str | Path) -> dict[str, Any]:
    """Read ``world.json`` of a data folder written by ``nextbest.sim.shop.write_world_data``."""
    path = Path(directory) / "world.json"
    if not path.is_file():
        raise NextbestError(f"{path} not found: generate the data with `nextbest shop generate --out {directory}`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise NextbestError(f"{path} is not valid JSON: {error}") from error

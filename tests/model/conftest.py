"""Realistic ECS task-definition JSON (as people write it, and as describe output prints it)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def example() -> Callable[[str], dict[str, Any]]:
    """A fresh copy of ``data/NAME.json``, safe to mutate in a test."""

    def load(name: str) -> dict[str, Any]:
        return copy.deepcopy(json.loads((DATA / f"{name}.json").read_text()))

    return load

"""Printing service and job events: one line each (``TIME  message``), or one JSON object a
line with ``-o json``, flushed so ``--follow`` shows them as they come."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from hatoba.cli import output
from hatoba.cli.render import when
from hatoba.model.job import JobEvent
from hatoba.model.service import ServiceEvent


def print_events(events: Sequence[ServiceEvent | JobEvent], as_json: bool) -> None:
    for e in events:
        if as_json:
            sys.stdout.write(json.dumps(output.to_json(e), ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(f"{when(e.created_at)}  {e.message}\n")
    sys.stdout.flush()

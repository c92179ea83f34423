"""Measures (prints, does not assert a number) the memory of one idle shim.

Run with ``-s`` to see it: ``pytest tests/drivers/test_shim_footprint.py -s``.
"""

from __future__ import annotations

from pathlib import Path

from .conftest import Containers


def smaps_rollup(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, value, *_ = line.split()
        fields[key.rstrip(":")] = int(value)
    return fields


async def test_idle_shim_memory(containers: Containers) -> None:
    _, handle = await containers.start(["sleep", "100"])
    shim = smaps_rollup(handle["shim_pid"])
    workload = smaps_rollup(handle["pid"])
    print(
        f"\nidle hatoba-shim: Rss {shim['Rss']} KiB, Pss {shim['Pss']} KiB, "
        f"Private {shim['Private_Clean'] + shim['Private_Dirty']} KiB "
        f"(the workload `sleep`: Rss {workload['Rss']} KiB, Pss {workload['Pss']} KiB)"
    )
    assert 0 < shim["Pss"] <= shim["Rss"]

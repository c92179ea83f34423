"""Pure cgroup value arithmetic, and building the shim."""

from __future__ import annotations

from pathlib import Path

import pytest

from hatoba.drivers.process import ShimBuildError, ensure_shim
from hatoba.drivers.process.cgroups import (
    CgroupVersion,
    Limits,
    container_dirs,
    cpu_shares,
    cpu_weight,
    limit_files,
)


def test_cpu_units_to_shares_and_weight() -> None:
    assert [cpu_shares(u) for u in (0, 1, 2, 512, 1024, 10**6)] == [2, 2, 2, 512, 1024, 262144]
    assert [cpu_weight(u) for u in (0, 2, 1024, 262144)] == [1, 1, 39, 10000]


def test_v1_and_v2_limit_files() -> None:
    limits = Limits(memory_mib=32, memory_reservation_mib=16, cpu_units=512, cpu_limit_units=1536)
    assert limit_files(CgroupVersion.V1, limits) == {
        "memory": {
            "memory.limit_in_bytes": str(32 << 20),
            "memory.soft_limit_in_bytes": str(16 << 20),
        },
        "cpu": {"cpu.shares": "512", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "150000"},
    }
    assert limit_files(CgroupVersion.V2, limits) == {
        "": {
            "cpu.weight": "20",
            "memory.max": str(32 << 20),
            "memory.swap.max": "0",
            "memory.low": str(16 << 20),
            "cpu.max": "150000 100000",
        }
    }
    assert limit_files(CgroupVersion.NONE, limits) == {}


def test_container_dirs_layout() -> None:
    mount = Path("/sys/fs/cgroup")
    assert container_dirs(CgroupVersion.V1, mount, "hatoba", "t1", "web") == [
        mount / "memory/hatoba/t1/web",
        mount / "cpu/hatoba/t1/web",
    ]
    assert container_dirs(CgroupVersion.V2, mount, "hatoba", "t1", "web") == [
        mount / "hatoba/t1/web"
    ]


def test_ensure_shim_is_cached_by_source_hash(tmp_path: Path, shim_binary: Path) -> None:
    first = ensure_shim(tmp_path)
    assert first.name == shim_binary.name and first.name.startswith("hatoba-shim-")
    mtime = first.stat().st_mtime_ns
    assert ensure_shim(tmp_path) == first and first.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temp files left


def test_missing_compiler_says_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(ShimBuildError, match=r"apt-get install gcc"):
        ensure_shim(tmp_path / "bin")

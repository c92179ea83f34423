"""Resource limits for process-driver containers through Linux cgroups (v2 or v1).

Each container gets its own cgroup, ``<mount>/<root_name>/<task_id>/<container>`` (under each
controller's mount on v1), which the shim's child joins before exec. Besides limits, the
cgroup is how we find every process of a container (even ones that left its process group)
and how we learn that the kernel OOM-killed it. The value arithmetic is pure
(``limit_files``); the rest is small, direct file I/O.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
CFS_PERIOD_US = 100_000
V1_CONTROLLERS = ("memory", "cpu")


class CgroupVersion(enum.Enum):
    V1 = "v1"
    V2 = "v2"
    NONE = "none"


@dataclass(frozen=True)
class Limits:
    """A container's resource settings, in ECS units."""

    memory_mib: int | None = None  # hard limit
    memory_reservation_mib: int | None = None  # soft limit
    cpu_units: int = 0  # relative weight, 1024 = one core
    cpu_limit_units: int | None = None  # hard cap, 1024 = one core


def _is_cgroup2_mount(path: Path) -> bool:
    try:
        mounts = Path("/proc/self/mounts").read_text()
    except OSError:
        return False
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[1] == str(path) and fields[2] == "cgroup2":
            return True
    return False


def detect(mount: Path = Path("/sys/fs/cgroup")) -> CgroupVersion:
    """The cgroup flavour we can use: v2 with memory+cpu delegated and writable, else v1
    with writable memory and cpu hierarchies, else none (limits become best-effort)."""
    controllers = mount / "cgroup.controllers"
    if controllers.exists() and _is_cgroup2_mount(mount):
        try:
            available = set(controllers.read_text().split())
        except OSError:
            available = set()
        if {"memory", "cpu"} <= available and os.access(mount, os.W_OK):
            return CgroupVersion.V2
    if all(os.access(mount / c, os.W_OK) for c in V1_CONTROLLERS):
        return CgroupVersion.V1
    return CgroupVersion.NONE


def cpu_weight(cpu_units: int) -> int:
    """cgroup v2 ``cpu.weight`` for ECS cpu units (the same mapping runc uses for shares)."""
    shares = cpu_shares(cpu_units)
    return 1 + ((shares - 2) * 9999) // 262142


def cpu_shares(cpu_units: int) -> int:
    """cgroup v1 ``cpu.shares``; like the ECS agent, 0 and 1 become the kernel minimum 2."""
    return min(262144, max(2, cpu_units))


def limit_files(version: CgroupVersion, limits: Limits) -> dict[str, dict[str, str]]:
    """``{controller: {file: value}}`` to write into a container's cgroup (v2 uses the single
    controller key ``""``)."""
    quota = None
    if limits.cpu_limit_units:
        quota = max(1000, limits.cpu_limit_units * CFS_PERIOD_US // 1024)
    if version is CgroupVersion.V1:
        mem: dict[str, str] = {}
        if limits.memory_mib is not None:
            mem["memory.limit_in_bytes"] = str(limits.memory_mib * MIB)
        if limits.memory_reservation_mib is not None:
            mem["memory.soft_limit_in_bytes"] = str(limits.memory_reservation_mib * MIB)
        cpu = {"cpu.shares": str(cpu_shares(limits.cpu_units))}
        if quota is not None:
            cpu["cpu.cfs_period_us"] = str(CFS_PERIOD_US)
            cpu["cpu.cfs_quota_us"] = str(quota)
        return {"memory": mem, "cpu": cpu}
    if version is CgroupVersion.V2:
        files = {"cpu.weight": str(cpu_weight(limits.cpu_units))}
        if limits.memory_mib is not None:
            files["memory.max"] = str(limits.memory_mib * MIB)
            files["memory.swap.max"] = "0"
        if limits.memory_reservation_mib is not None:
            files["memory.low"] = str(limits.memory_reservation_mib * MIB)
        if quota is not None:
            files["cpu.max"] = f"{quota} {CFS_PERIOD_US}"
        return {"": files}
    return {}


def container_dirs(
    version: CgroupVersion,
    mount: Path,
    root_name: str,
    task_id: str,
    container: str,
    *,
    with_cpu: bool = True,
) -> list[Path]:
    """The container's cgroup directories (one per v1 controller, one on v2).

    On v1 the cpu controller is joined only when the container asks for cpu
    (``with_cpu``): attaching a process to a v1 cpu cgroup costs ~15 ms of kernel time
    (an RCU grace period), which would dominate task start latency; without a cpu setting
    the container would get the default weight anyway. Memory is always joined: it is how
    OOM kills are detected and every process of the container is found."""
    if version is CgroupVersion.V1:
        controllers = V1_CONTROLLERS if with_cpu else ("memory",)
        return [mount / c / root_name / task_id / container for c in controllers]
    if version is CgroupVersion.V2:
        return [mount / root_name / task_id / container]
    return []


def _enable_v2_controllers(task_dir: Path, mount: Path) -> None:
    """v2 only lets a cgroup use the controllers its parent enables in
    ``cgroup.subtree_control``: enable memory+cpu from the mount down to the task level."""
    chain = [task_dir, *task_dir.parents]
    chain = chain[: chain.index(mount) + 1] if mount in chain else [task_dir]
    for level in reversed(chain):
        level.mkdir(exist_ok=True)
        (level / "cgroup.subtree_control").write_text("+memory +cpu")


def create(version: CgroupVersion, mount: Path, dirs: list[Path], limits: Limits) -> None:
    """Create the container's cgroups and write its limits. Raises OSError on failure."""
    files = limit_files(version, limits)
    if version is CgroupVersion.V2 and dirs:
        _enable_v2_controllers(dirs[0].parent, mount)
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        controller = d.relative_to(mount).parts[0] if version is CgroupVersion.V1 else ""
        for name, value in files.get(controller, {}).items():
            (d / name).write_text(value)


def procs_files(dirs: Iterable[Path]) -> list[Path]:
    return [d / "cgroup.procs" for d in dirs]


def pids(dirs: Iterable[Path]) -> set[int]:
    """Every process currently in the container's cgroups."""
    found: set[int] = set()
    for f in procs_files(dirs):
        with contextlib.suppress(OSError):
            found.update(int(p) for p in f.read_text().split())
    return found


def kill_all(dirs: Iterable[Path], sig: int = signal.SIGKILL) -> int:
    """Send ``sig`` to every process in the cgroups; returns how many were signalled."""
    sent = 0
    for pid in pids(dirs):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            sent += 1
    return sent


def oom_killed(dirs: Iterable[Path]) -> bool:
    """Did the kernel OOM-kill anything in these cgroups? (v1 ``memory.oom_control``,
    v2 ``memory.events``; both report ``oom_kill N``)."""
    for d in dirs:
        for name in ("memory.oom_control", "memory.events"):
            try:
                text = (d / name).read_text()
            except OSError:
                continue
            for line in text.splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and value.strip().isdigit() and int(value) > 0:
                    return True
    return False


def remove(dirs: Iterable[Path]) -> None:
    """Remove the container's cgroups, then its task's if no sibling is left. Cgroup dirs
    are removed with rmdir (their files are virtual); busy or already gone ones are left."""
    for d in dirs:
        for path in (d, d.parent):
            try:
                path.rmdir()
            except FileNotFoundError:
                continue
            except OSError:
                break

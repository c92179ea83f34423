"""Build the shim's command line and check what can be checked before spawning it.

Checking argv[0] and cwd here gives ECS/Docker-style reasons such as
``CannotStartContainerError: exec: "foo": executable file not found in $PATH`` without a
round trip through the shim; the shim still reports anything that fails later (stage+errno),
and ``start_error_reason`` turns that into the same kind of message.
"""

from __future__ import annotations

import errno as errno_mod
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path

from hatoba.drivers.protocol import StartError, Ulimit

from .users import ResolvedUser

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# ECS ulimit names; the shim maps each to its RLIMIT_* constant.
RLIMIT_NAMES = frozenset(
    {
        "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
        "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
    }
)  # fmt: skip
PREFIX = "CannotStartContainerError: "


def workload_env(env: Mapping[str, str], user: ResolvedUser | None) -> dict[str, str]:
    """The container's environment, with Docker's defaults for PATH and HOME if unset."""
    merged = dict(env)
    merged.setdefault("PATH", DEFAULT_PATH)
    merged.setdefault("HOME", user.home if user else "/root")
    return merged


def check_cwd(cwd: str | None) -> None:
    if cwd is not None and not os.path.isdir(cwd):
        raise StartError(f'{PREFIX}chdir to cwd ("{cwd}"): no such file or directory')


def resolve_executable(argv0: str, path_var: str, cwd: str | None) -> str:
    """Where ``argv0`` is found (as the shim's execvp will find it), or StartError."""
    if not argv0:
        raise StartError(f"{PREFIX}exec: empty command")
    if "/" in argv0:
        candidate = Path(cwd or ".") / argv0
        try:
            mode = candidate.stat().st_mode
        except FileNotFoundError:
            raise StartError(
                f'{PREFIX}exec: "{argv0}": stat {argv0}: no such file or directory'
            ) from None
        if stat.S_ISDIR(mode):
            raise StartError(f'{PREFIX}exec: "{argv0}": is a directory')
        if not os.access(candidate, os.X_OK) or not mode & 0o111:
            raise StartError(f'{PREFIX}exec: "{argv0}": permission denied')
        return str(candidate)
    for directory in path_var.split(":"):
        candidate = Path(directory or ".") / argv0
        try:
            mode = candidate.stat().st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode) and mode & 0o111:
            return str(candidate)
    raise StartError(f'{PREFIX}exec: "{argv0}": executable file not found in $PATH')


def rlimit_flags(ulimits: Sequence[Ulimit], memory_mib: int | None) -> list[str]:
    """``--rlimit`` flags for ECS ulimits, plus RLIMIT_AS for ``memory_mib`` (the best-effort
    memory limit when no cgroup is available)."""
    flags: list[str] = []
    for u in ulimits:
        if u.name not in RLIMIT_NAMES:
            raise StartError(f'{PREFIX}unknown ulimit "{u.name}"')
        flags += ["--rlimit", f"{u.name}={_rlim(u.soft)}:{_rlim(u.hard)}"]
    if memory_mib is not None:
        size = memory_mib * 1024 * 1024
        flags += ["--rlimit", f"as={size}:{size}"]
    return flags


def _rlim(value: int) -> str:
    return "unlimited" if value < 0 else str(value)


def setup_flags(
    *,
    procs_files: Sequence[Path],
    user: ResolvedUser | None,
    cwd: str | None,
    rlimits: Sequence[str],
) -> list[str]:
    """Options shared by ``hatoba-shim run`` and ``hatoba-shim exec``."""
    flags: list[str] = []
    for f in procs_files:
        flags += ["--cgroup-procs", str(f)]
    if user is not None:
        flags += ["--uid", str(user.uid), "--gid", str(user.gid)]
        flags += ["--groups", ",".join(str(g) for g in user.groups)]
    if cwd is not None:
        flags += ["--cwd", cwd]
    return flags + list(rlimits)


def start_error_reason(stage: str, err: int, argv0: str, cwd: str | None) -> str:
    """An ECS-style reason for a failure the shim reported as ``failed <stage> <errno>``."""
    text = os.strerror(err).lower() if err else "unknown error"
    if stage == "exec":
        if err == errno_mod.ENOENT and "/" not in argv0:
            return f'{PREFIX}exec: "{argv0}": executable file not found in $PATH'
        return f'{PREFIX}exec: "{argv0}": {text}'
    if stage == "chdir":
        return f'{PREFIX}chdir to cwd ("{cwd}"): {text}'
    if stage in ("setuid", "setgid", "setgroups"):
        return f"{PREFIX}setting up user ({stage}): {text}"
    if stage == "cgroup":
        return f"{PREFIX}joining the container's cgroup: {text}"
    if stage == "rlimit":
        return f"{PREFIX}applying ulimits: {text}"
    return f"{PREFIX}{stage}: {text}"

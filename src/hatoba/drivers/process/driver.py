"""The process driver: each container is a local process group under a small C shim.

::

    control plane (asyncio)          hatoba-shim (one per container, own session)
      start ──spawn──────────────▶  fork ─▶ workload (own process group, cgroup, user, rlimits)
            ◀─"started PID ST"────  stdout/stderr ─▶ LOG_PATH (framed records)
      wait  ◀─pidfd readable──────  exit ─▶ STATE_DIR/exit ("exited N" / "signaled N")
      stop  ──killpg(signal)──────────────▶ workload group (SIGKILL after the timeout)

The shim, not the control plane, owns the container's pipes and its exit status, so
containers keep running and logging while the control plane is down, and a restarted
control plane re-adopts them from the JSON ``Handle`` (``recover``, then ``wait``).
No threads: processes are spawned with ``os.posix_spawn`` (a vfork/exec of a tiny
binary) and awaited on pidfds, because asyncio's default child watcher on Python 3.11 would
park one thread per running container.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal as signal_mod
from pathlib import Path

from hatoba.drivers.protocol import (
    ContainerSpec,
    ExecProcess,
    ExecSpec,
    ExitStatus,
    Handle,
    StartError,
)
from hatoba.model.layout import DataLayout

from . import cgroups
from .command import (
    check_cwd,
    resolve_executable,
    rlimit_flags,
    setup_flags,
    start_error_reason,
    workload_env,
)
from .exec import spawn_exec
from .fdwait import wait_fd
from .pidwait import alive, proc_starttime, wait_exit
from .shim_build import ensure_shim
from .users import ResolvedUser, resolve_user

log = logging.getLogger("hatoba.drivers.process")

START_TIMEOUT = 30.0
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
LOST_REASON = "HostError: task shim exited without recording the container's exit"
STATE_FILES = ("pid", "exit", "shim.err", ".pid.tmp", ".exit.tmp")


def signal_number(name: str) -> int:
    """``SIGTERM``, ``TERM`` or ``15`` → 15; ValueError for anything else."""
    if name.isdigit():
        return signal_mod.Signals(int(name)).value
    upper = name.upper()
    try:
        return signal_mod.Signals[upper if upper.startswith("SIG") else "SIG" + upper].value
    except KeyError:
        raise ValueError(f"unknown signal {name!r}") from None


def read_exit(state_dir: Path) -> ExitStatus | None:
    """The status the shim recorded, or None if it has not (yet)."""
    try:
        kind, value = (state_dir / "exit").read_text().split()
    except (OSError, ValueError):
        return None
    if kind == "signaled":
        return ExitStatus(exit_code=128 + int(value), signal=int(value))
    return ExitStatus(exit_code=int(value))


class ProcessDriver:
    """``hatoba.drivers.protocol.Driver`` running containers as local processes."""

    name = "process"

    def __init__(
        self,
        layout: DataLayout,
        *,
        cgroup_root_name: str = "hatoba",
        cgroup_mount: Path = Path("/sys/fs/cgroup"),
        cgroup_version: cgroups.CgroupVersion | None = None,
    ) -> None:
        self._layout = layout
        self._cgroup_root = cgroup_root_name
        self._mount = cgroup_mount
        self._version = cgroup_version or cgroups.detect(cgroup_mount)
        self._shim: Path | None = None
        self._shim_lock = asyncio.Lock()
        self._children: set[int] = set()  # pids of shims we spawned, to reap
        self._kill_timers: dict[str, asyncio.TimerHandle] = {}
        self._warned_no_cgroups = False

    async def shim_path(self) -> Path:
        """The compiled shim, built on first use (a fraction of a second, once per version)."""
        async with self._shim_lock:
            if self._shim is None:
                self._shim = await asyncio.to_thread(ensure_shim, self._layout.bin_dir)
            return self._shim

    # -- start ------------------------------------------------------------------------

    async def start(self, spec: ContainerSpec) -> Handle:
        if not spec.argv:
            raise StartError("CannotStartContainerError: empty command")
        shim = await self.shim_path()
        user = resolve_user(spec.user) if spec.user else None
        env = workload_env(spec.env, user)
        check_cwd(spec.cwd)
        if "/" in spec.argv[0]:  # one stat, for Docker's exact wording of a bad path
            resolve_executable(spec.argv[0], env["PATH"], spec.cwd)
        # A bare name is looked up by the shim's own execvp; a failure comes back as
        # "failed exec ENOENT" and becomes the same ECS-style reason, so no PATH search
        # (a stat per PATH entry) sits on every start.
        state_dir = spec.state_dir
        # The shim creates STATE_DIR (and clears a previous run's state files from it):
        # metadata operations are slow here, so none is done twice or from Python. The log
        # usually lives in STATE_DIR or above it; elsewhere its directory is made here.
        log_dir = spec.log_path.parent
        if log_dir != state_dir and log_dir not in state_dir.parents:
            log_dir.mkdir(parents=True, exist_ok=True)
        dirs = self._create_cgroups(spec)
        try:
            memory_rlimit = spec.memory if self._version is cgroups.CgroupVersion.NONE else None
            flags = setup_flags(
                procs_files=cgroups.procs_files(dirs),
                user=user,
                cwd=spec.cwd,
                rlimits=rlimit_flags(spec.ulimits, memory_rlimit),
            )
            argv = [str(shim), "run", "--dir", str(state_dir), "--log", str(spec.log_path)]
            argv += ["--max-line", str(spec.max_line_bytes), *flags, "--", *spec.argv]
            shim_proc, workload = await self._spawn(argv, env, spec, state_dir)
        except BaseException:
            cgroups.remove(dirs)
            raise
        return self._handle(spec, shim, shim_proc, workload, dirs)

    def _handle(
        self,
        spec: ContainerSpec,
        shim: Path,
        shim_proc: tuple[int, int],
        workload: tuple[int, int],
        dirs: list[Path],
    ) -> Handle:
        return {
            "driver": self.name,
            "shim": str(shim),
            "shim_pid": shim_proc[0],
            "shim_starttime": shim_proc[1],
            "pid": workload[0],
            "starttime": workload[1],
            "state_dir": str(spec.state_dir),
            "log_path": str(spec.log_path),
            "cgroup_version": self._version.value,
            "cgroups": [str(d) for d in dirs],
            "stop_signal": spec.stop_signal,
        }

    async def find(self, spec: ContainerSpec) -> Handle | None:
        """A container started earlier for ``spec`` whose handle was never recorded (the
        control plane died between spawning it and saving the handle), from its pid file."""
        entries = _read_pid_file(spec.state_dir)
        if "shim" not in entries or "workload" not in entries:
            return None
        handle = self._handle(
            spec,
            await self.shim_path(),
            entries["shim"],
            entries["workload"],
            self._cgroup_dirs(spec) if _wants_cgroup(spec) else [],
        )
        return handle if await self.recover(handle) else None

    def _cgroup_dirs(self, spec: ContainerSpec) -> list[Path]:
        return cgroups.container_dirs(
            self._version,
            self._mount,
            self._cgroup_root,
            spec.task_id,
            spec.name,
            with_cpu=spec.cpu > 0 or bool(spec.cpu_limit),
        )

    def _create_cgroups(self, spec: ContainerSpec) -> list[Path]:
        if self._version is cgroups.CgroupVersion.NONE:
            if not self._warned_no_cgroups:
                log.warning(
                    "no writable cgroup hierarchy (v2 with memory+cpu, or v1 memory and cpu) "
                    "under %s: container limits are best-effort (memory as RLIMIT_AS, no cpu "
                    "limits, no OOM detection)",
                    self._mount,
                )
                self._warned_no_cgroups = True
            return []
        if not _wants_cgroup(spec):
            return []
        dirs = self._cgroup_dirs(spec)
        limits = cgroups.Limits(
            memory_mib=spec.memory,
            memory_reservation_mib=spec.memory_reservation,
            cpu_units=spec.cpu,
            cpu_limit_units=spec.cpu_limit,
        )
        try:
            cgroups.create(self._version, self._mount, dirs, limits)
        except OSError as exc:
            cgroups.remove(dirs)
            raise StartError(f"CannotStartContainerError: creating cgroup: {exc}") from exc
        return dirs

    async def _spawn(
        self, argv: list[str], env: dict[str, str], spec: ContainerSpec, state_dir: Path
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        """Start the shim detached (own session, stdin /dev/null) and read its one-line
        report ``started PID STARTTIME SHIM_STARTTIME``. Returns (shim pid, its starttime)
        and (workload pid, its starttime)."""
        shim_pid, report_fd = _spawn_shim(argv, env)
        self._children.add(shim_pid)
        try:
            async with asyncio.timeout(START_TIMEOUT):
                report = await _read_line(report_fd)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(shim_pid, signal_mod.SIGKILL)
            await wait_exit(shim_pid, proc_starttime(shim_pid) or 0)
            self._reap(shim_pid)
            raise StartError("CannotStartContainerError: the task shim did not report") from None
        finally:
            os.close(report_fd)
        text = report.decode(errors="replace")
        words = text.split(maxsplit=3)
        if len(words) >= 4 and words[0] == "started":
            shim_starttime = int(words[3]) or proc_starttime(shim_pid) or 0
            return (shim_pid, shim_starttime), (int(words[1]), int(words[2]))
        await wait_exit(shim_pid, proc_starttime(shim_pid) or 0)
        self._reap(shim_pid)
        if len(words) >= 3 and words[0] == "failed":
            raise StartError(start_error_reason(words[1], int(words[2]), spec.argv[0], spec.cwd))
        # the shim's stderr is the report pipe until it reports, shim.err after
        detail = text
        with contextlib.suppress(OSError):
            detail += (state_dir / "shim.err").read_text(errors="replace")
        detail = detail.strip()[-500:]
        raise StartError(f"CannotStartContainerError: the task shim failed: {detail}")

    def _reap(self, shim_pid: int) -> None:
        """Collect the exit of a shim we spawned (no-op for adopted ones or live ones)."""
        if shim_pid not in self._children:
            return
        try:
            pid, _status = os.waitpid(shim_pid, os.WNOHANG)
        except ChildProcessError:
            pid = shim_pid  # already reaped
        if pid == shim_pid:
            self._children.discard(shim_pid)

    # -- wait / stop ------------------------------------------------------------------

    async def wait(self, handle: Handle) -> ExitStatus:
        state_dir = Path(handle["state_dir"])
        await wait_exit(handle["shim_pid"], handle["shim_starttime"])
        self._reap(handle["shim_pid"])
        self._cancel_kill(handle)
        dirs = [Path(d) for d in handle["cgroups"]]
        status = read_exit(state_dir)
        if status is None:
            # The shim died (e.g. SIGKILLed): nobody logs or reaps any more, so end what is
            # left of the container rather than leaving it running unsupervised.
            self._kill_group(handle, signal_mod.SIGKILL)
            cgroups.kill_all(dirs)
            return ExitStatus(exit_code=None, reason=LOST_REASON)
        if cgroups.oom_killed(dirs):
            return ExitStatus(status.exit_code, status.signal, oom_killed=True, reason=OOM_REASON)
        return status

    async def stop(self, handle: Handle, signal: str, timeout: float) -> None:
        sig = signal_number(signal)
        if not self.is_running(handle):
            return
        self._kill_group(handle, sig)
        key = handle["state_dir"]
        if key not in self._kill_timers:  # a second stop keeps the first, earlier deadline
            loop = asyncio.get_running_loop()
            self._kill_timers[key] = loop.call_later(max(0.0, timeout), self._kill_now, handle)

    def _kill_now(self, handle: Handle) -> None:
        self._kill_timers.pop(handle["state_dir"], None)
        if read_exit(Path(handle["state_dir"])) is None:
            self._kill_group(handle, signal_mod.SIGKILL)
            cgroups.kill_all(Path(d) for d in handle["cgroups"])

    def _kill_group(self, handle: Handle, sig: int) -> None:
        # Only while the main process is the one we started: its pid is the group id, and
        # once it is gone the shim tears the group down itself.
        if alive(handle["pid"], handle["starttime"]):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(handle["pid"], sig)

    def _cancel_kill(self, handle: Handle) -> None:
        timer = self._kill_timers.pop(handle["state_dir"], None)
        if timer is not None:
            timer.cancel()

    # -- recovery and cleanup ---------------------------------------------------------

    async def recover(self, handle: Handle) -> bool:
        return (Path(handle["state_dir"]) / "exit").exists() or alive(
            handle["shim_pid"], handle["shim_starttime"]
        )

    def is_running(self, handle: Handle) -> bool:
        return not (Path(handle["state_dir"]) / "exit").exists() and alive(
            handle["shim_pid"], handle["shim_starttime"]
        )

    async def destroy(self, handle: Handle) -> None:
        self._cancel_kill(handle)
        dirs = [Path(d) for d in handle["cgroups"]]
        if self.is_running(handle):
            self._kill_group(handle, signal_mod.SIGKILL)
        for _ in range(50):  # SIGKILLed processes leave their cgroup within milliseconds
            cgroups.kill_all(dirs)
            cgroups.remove(dirs)
            if not any(d.exists() for d in dirs):
                break
            await asyncio.sleep(0.02)
        else:
            log.warning("could not remove cgroups %s: processes remain", dirs)
        self._reap(handle["shim_pid"])
        # a few metadata operations, slow here: off the event loop, which serves requests
        await asyncio.to_thread(_remove_state_files, Path(handle["state_dir"]))

    # -- exec -------------------------------------------------------------------------

    async def exec_process(
        self, handle: Handle, spec: ContainerSpec, exec_spec: ExecSpec
    ) -> ExecProcess:
        if not exec_spec.argv:
            raise StartError("CannotStartContainerError: empty exec command")
        if not self.is_running(handle):
            raise StartError(f"CannotStartContainerError: container {spec.name} is not running")
        shim = await self.shim_path()
        user: ResolvedUser | None = resolve_user(spec.user) if spec.user else None
        env = workload_env(spec.env if exec_spec.env is None else exec_spec.env, user)
        flags = setup_flags(
            procs_files=cgroups.procs_files(Path(d) for d in handle["cgroups"]),
            user=user,
            cwd=spec.cwd,
            rlimits=rlimit_flags(spec.ulimits, None),
        )
        tty = ["--tty"] if exec_spec.tty else []
        argv = [str(shim), "exec", *tty, *flags, "--", *exec_spec.argv]
        return spawn_exec(argv, env, exec_spec.tty)


def _spawn_shim(argv: list[str], env: dict[str, str]) -> tuple[int, int]:
    """Start the shim in its own session; returns its pid and the read end of its report
    pipe. ``posix_spawn`` (vfork + exec) rather than ``subprocess.Popen``: this blocks the
    event loop, and Popen's fork_exec, error pipe and bookkeeping cost several times more
    here. Popen's ``close_fds`` is the shim's job instead: it closes every descriptor above
    2 first thing, so nothing the control plane holds open leaks into it. Its stderr shares
    the report pipe until it has reported (then STATE_DIR/shim.err, created on first use)."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.posix_spawn(
            argv[0],
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, write_end, 1),
                (os.POSIX_SPAWN_DUP2, write_end, 2),
            ],
            setsid=True,
            # as Popen's restore_signals: Python ignores these, a child should not
            setsigdef=(signal_mod.SIGPIPE, signal_mod.SIGXFSZ),
        )
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return pid, read_end


def _wants_cgroup(spec: ContainerSpec) -> bool:
    """Only containers with resource settings get a cgroup. Joining one is not free: on
    cgroup v1 the attach waits for an RCU grace period (~13 ms measured here), which would
    more than double the start latency of a task that asked for no limits. Without a
    cgroup the shim still tears down the container's process group and, as a subreaper,
    every orphan it inherits."""
    return bool(
        spec.memory is not None
        or spec.memory_reservation is not None
        or spec.cpu > 0
        or spec.cpu_limit
    )


def _remove_state_files(state_dir: Path) -> None:
    """Remove the shim's files and, when nothing else is in it, STATE_DIR. One listing
    instead of an unlink per possible name: metadata operations are slow here."""
    try:
        names = os.listdir(state_dir)
    except OSError:
        return
    others = False
    for name in names:
        if name in STATE_FILES:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(state_dir / name)
        else:
            others = True  # the log may live here
    if not others:
        with contextlib.suppress(OSError):
            state_dir.rmdir()


def _read_pid_file(state_dir: Path) -> dict[str, tuple[int, int]]:
    """``STATE_DIR/pid``: ``shim PID STARTTIME`` and ``workload PID STARTTIME`` lines."""
    entries: dict[str, tuple[int, int]] = {}
    with contextlib.suppress(OSError):
        for line in (state_dir / "pid").read_text().splitlines():
            name, pid, starttime = line.split()
            entries[name] = (int(pid), int(starttime))
    return entries


async def _read_line(fd: int) -> bytes:
    """Read one line (or up to EOF) from a pipe without blocking the event loop."""
    os.set_blocking(fd, False)
    data = b""
    while b"\n" not in data:
        await wait_fd(fd)
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data

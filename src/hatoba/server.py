"""Composition root: builds the store, driver, agent, controllers and API, and runs them
under one supervisor until asked to stop.

Only one control plane may own a data directory at a time (an exclusive lock on
``server.lock``); it publishes its URL in ``server.json`` so CLI commands find it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO

import uvicorn

from hatoba import __version__
from hatoba.agent.log_shipper import LogShipper, ShipperSettings
from hatoba.agent.node_agent import NodeAgent, local_node_id
from hatoba.agent.runner import RunnerContext
from hatoba.agent.specs import base_environment
from hatoba.api.app import create_app
from hatoba.api.services import ApiServices
from hatoba.config import Settings
from hatoba.controllers.job_loop import JobLoopSettings, JobScheduler
from hatoba.controllers.jobs import Jobs
from hatoba.controllers.nodes import Nodes
from hatoba.controllers.parameters import Parameters, ParameterStoreResolver
from hatoba.controllers.scaling import Scaling
from hatoba.controllers.scaling_loop import ScalingLoop, ScalingSettings
from hatoba.controllers.service_loop import LoopSettings, ServiceScheduler
from hatoba.controllers.services import Services
from hatoba.controllers.task_tokens import TaskTokens
from hatoba.controllers.taskdefs import TaskDefinitions
from hatoba.controllers.tasks import Tasks
from hatoba.controllers.tokens import Tokens
from hatoba.drivers.process.driver import ProcessDriver
from hatoba.logs.outputs.factory import load_cluster_outputs
from hatoba.model.clock import SystemClock
from hatoba.model.errors import HatobaError
from hatoba.model.layout import DataLayout
from hatoba.model.task import Task
from hatoba.store.factory import open_store

log = logging.getLogger("hatoba.server")


class AlreadyRunning(HatobaError):
    code = "AlreadyRunning"


def ensure_token(layout: DataLayout) -> str:
    """The API token: generated on first start, kept 0600 in the data directory."""
    layout.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = layout.token_file
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def acquire_lock(layout: DataLayout) -> IO[str]:
    """Hold the data directory's lock for as long as the returned file stays open."""
    layout.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    f = open(layout.lock_file, "a+")  # noqa: SIM115 - kept open while serving
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        f.close()
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise AlreadyRunning(running_server_hint(layout)) from None
        raise
    return f


def running_server_hint(layout: DataLayout) -> str:
    try:
        info = json.loads(layout.server_file.read_text())
        return f"a hatoba server is already running (pid {info['pid']}, {info['url']})"
    except (OSError, ValueError, KeyError):
        return "another hatoba control plane holds this data directory"


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
    # proto is IPPROTO_TCP, and with Nagle on every keep-alive response waits ~40 ms for
    # the client's delayed ACK. Accepted sockets inherit TCP_NODELAY on Linux too.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


@dataclass
class Running:
    url: str
    token: str
    server: uvicorn.Server


def agent_uri_for(url: str) -> str:
    """The URL tasks on this machine use to reach the control plane (a wildcard bind
    address becomes loopback)."""
    for wildcard, loopback in (("//0.0.0.0:", "//127.0.0.1:"), ("//[::]:", "//[::1]:")):
        url = url.replace(wildcard, loopback)
    return url


@contextlib.asynccontextmanager
async def control_plane(
    settings: Settings, *, agent_uri: str | None = None, autoscaling: bool = True
) -> AsyncIterator[ApiServices]:
    """Everything but the HTTP listener: store, driver, agent (running), controllers.
    ``agent_uri`` (the API's URL, when it has one) goes to every task as
    HATOBA_AGENT_URI; ``autoscaling=False`` leaves the scaling loop out (tests run their
    own on fake time)."""
    layout = settings.layout
    store = await open_store(settings.database_url, layout)
    clock = SystemClock()
    try:
        driver = ProcessDriver(layout)
        parameters = Parameters(store, layout.keyring_file, os.environ, clock)
        token = ensure_token(layout)
        task_tokens = TaskTokens.load(layout.home)

        def task_env(task: Task) -> dict[str, str]:
            env = {"HATOBA_TASK_TOKEN": task_tokens.token(task.task_id)}
            if agent_uri is not None:
                env["HATOBA_AGENT_URI"] = agent_uri_for(agent_uri)
            return env

        ctx = RunnerContext(
            store=store,
            driver=driver,
            clock=clock,
            layout=layout,
            secrets=ParameterStoreResolver(parameters),
            base_env=base_environment(),
            task_env=task_env,
            log_max_line=settings.log_max_line,
        )
        node_id = local_node_id(layout)
        log_shipper = LogShipper(
            store,
            layout,
            node_id,
            clock,
            ShipperSettings(
                cluster=load_cluster_outputs(settings.log_outputs, layout.home),
                buffer_bytes=settings.log_buffer_bytes,
                flush_grace=settings.log_flush_grace,
            ),
        )
        agent = NodeAgent(
            ctx,
            node_id,
            retention=timedelta(hours=settings.stopped_task_retention_hours),
            attributes=settings.node_attributes,
            log_max_bytes=settings.log_max_bytes,
            log_shipper=log_shipper,
        )
        tasks = Tasks(store, clock, on_placed=agent.offer)
        service_controller = Services(store, clock)
        services = ApiServices(
            store=store,
            layout=layout,
            task_definitions=TaskDefinitions(store),
            tasks=tasks,
            services=service_controller,
            nodes=Nodes(store),
            agent=agent,
            parameters=parameters,
            tokens=Tokens(store, clock, token),
            token=token,
            version=__version__,
            jobs=Jobs(store, clock, tasks),
            scaling=Scaling(store, clock, service_controller),
            task_tokens=task_tokens,
        )
        agent_task = asyncio.create_task(agent.run(), name="agent")
        ready = asyncio.create_task(agent.ready.wait())
        await asyncio.wait({agent_task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if agent_task.done():
            ready.cancel()
            agent_task.result()  # raises the start-up error
        # the agent hands it every task it runs (queued until it starts)
        shipper_task = asyncio.create_task(log_shipper.run(), name="log-shipper")
        audit_task = asyncio.create_task(services.tokens.audit_writer.run(), name="audit")
        scheduler = ServiceScheduler(
            store,
            clock,
            tasks,
            # one control plane per data directory (its lock), so the node id is a unique
            # holder, and a restarted control plane takes its own lease back at once
            holder=agent.node_id,
            settings=LoopSettings(lease_ttl=settings.scheduler_lease_ttl),
        )
        services.scheduler = scheduler
        scheduler_task = asyncio.create_task(scheduler.run(), name="service-scheduler")
        job_scheduler = JobScheduler(
            store,
            clock,
            tasks,
            holder=agent.node_id,  # unique per data directory, as for the service scheduler
            settings=JobLoopSettings(lease_ttl=settings.scheduler_lease_ttl),
        )
        services.job_scheduler = job_scheduler
        job_task = asyncio.create_task(job_scheduler.run(), name="job-scheduler")
        loops = [job_task, scheduler_task]
        if autoscaling:
            scaling_loop = ScalingLoop(
                store,
                clock,
                service_controller,
                holder=agent.node_id,  # unique per data directory, as for the service scheduler
                settings=ScalingSettings(lease_ttl=settings.scheduler_lease_ttl),
                node_id=agent.node_id,
            )
            services.scaling_loop = scaling_loop
            if services.scaling is not None:
                services.scaling.metrics = scaling_loop
            loops.insert(0, asyncio.create_task(scaling_loop.run(), name="scaling"))
        try:
            yield services
        finally:
            # the loops first (they release their leases); the audit writer writes what is left
            for task in (*loops, agent_task, audit_task):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # log outputs deliver what they can within their grace; the rest waits on disk
            await log_shipper.close()
            shipper_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await shipper_task
    finally:
        await store.close()


async def serve(
    settings: Settings,
    *,
    on_ready: Callable[[Running], None] | None = None,
) -> None:
    """Run the control plane and its API until SIGINT/SIGTERM (or ``server.should_exit``).

    Signal handlers are installed only on the main thread (uvicorn's rule), so the same
    function serves ``hatoba server`` and the embedded control plane of a CLI command."""
    layout = settings.layout
    lock = acquire_lock(layout)
    try:
        sock = _bind(settings.host, settings.port)
        host, port = sock.getsockname()[:2]
        tls = _tls_files(settings)
        scheme = "https" if tls else "http"
        url = f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"
        async with control_plane(settings, agent_uri=url) as services:
            app = create_app(services)
            config = uvicorn.Config(
                app,
                log_level="warning",
                lifespan="off",
                access_log=False,
                timeout_graceful_shutdown=2,
                ssl_certfile=str(tls[0]) if tls else None,
                ssl_keyfile=str(tls[1]) if tls else None,
            )
            server = uvicorn.Server(config)
            _write_server_file(layout, url)
            try:
                if on_ready is not None:
                    asyncio.get_running_loop().call_soon(
                        on_ready, Running(url, services.token, server)
                    )
                await server.serve(sockets=[sock])
            finally:
                with contextlib.suppress(FileNotFoundError):
                    layout.server_file.unlink()
    finally:
        lock.close()


def _tls_files(settings: Settings) -> tuple[Path, Path] | None:
    """(certificate, key) when TLS is configured; both or neither must be set."""
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise HatobaError("set both HATOBA_TLS_CERT and HATOBA_TLS_KEY, or neither")
    for path in (cert, key):
        if not path.is_file():
            raise HatobaError(f"TLS file {path} does not exist")
    return cert, key


def run_server(settings: Settings, on_ready: Callable[[Running], None] | None = None) -> None:
    """``serve`` on a fresh event loop: uvloop's when installed (it roughly halves the
    control plane's per-request overhead), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(settings, on_ready=on_ready))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(settings, on_ready=on_ready))


def _write_server_file(layout: DataLayout, url: str) -> None:
    tmp = layout.server_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": url, "pid": os.getpid()}))
    tmp.replace(layout.server_file)


class EmbeddedServer:
    """A control plane in a background thread of this process, for one CLI command."""

    def __init__(self, settings: Settings) -> None:
        self.settings = Settings(
            home=settings.home,
            database_url=settings.database_url,
            host="127.0.0.1",
            port=0,
            stopped_task_retention_hours=settings.stopped_task_retention_hours,
            node_attributes=settings.node_attributes,
            scheduler_lease_ttl=settings.scheduler_lease_ttl,
            log_max_bytes=settings.log_max_bytes,
            log_max_line=settings.log_max_line,
            log_outputs=settings.log_outputs,
            log_buffer_bytes=settings.log_buffer_bytes,
            log_flush_grace=settings.log_flush_grace,
        )  # loopback, in-process: plain http (the CLI talks to it directly), never TLS
        self._ready = threading.Event()
        self._running: Running | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="hatoba-embedded", daemon=True)

    def _main(self) -> None:
        def ready(r: Running) -> None:
            self._running = r
            self._ready.set()

        try:
            run_server(self.settings, on_ready=ready)
        except BaseException as exc:
            self._error = exc
        finally:
            self._ready.set()

    def start(self, timeout: float = 30.0) -> Running:
        self._thread.start()
        self._ready.wait(timeout)
        if self._running is None:
            if self._error is not None:
                raise self._error
            raise RuntimeError("embedded control plane did not start")
        return self._running

    def stop(self) -> None:
        if self._running is not None:
            self._running.server.should_exit = True
        self._thread.join(timeout=15)


def data_dir_in_use(layout: DataLayout) -> bool:
    """True when some process holds the data directory's lock."""
    if not Path(layout.lock_file).exists():
        return False
    with open(layout.lock_file, "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False

"""Deciding which control plane a command talks to, starting an embedded one if needed.

Order: ``HATOBA_URL`` (explicit wins) -> the local server published in ``server.json`` ->
an embedded control plane in this process, for this command only. The embedded one lets
``pip install hatoba && hatoba run ...`` work without first starting a server; it must not
start when another process owns the data directory (two control planes on one database
would fight over the same tasks).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from hatoba.client import HatobaClient
from hatoba.client.discovery import Endpoint, from_environment, running_server
from hatoba.config import Settings

if TYPE_CHECKING:
    from hatoba.server import EmbeddedServer

EMBEDDED_NOTICE = (
    "hatoba: no server running; using an embedded control plane for this command "
    "(start one with: hatoba server)"
)
LOCKED_WAIT_SECONDS = 5.0


class NoServer(Exception):
    """The data directory is owned by a process that does not (yet) serve the API."""


class Connection:
    """A client plus, for an embedded control plane, the duty to stop it at the end."""

    def __init__(
        self, endpoint: Endpoint, embedded: EmbeddedServer | None = None, timeout: float = 30
    ) -> None:
        self.endpoint = endpoint
        self.embedded = embedded
        self.client = HatobaClient(endpoint.url, endpoint.token, timeout=timeout)

    @property
    def url(self) -> str:
        return self.endpoint.url

    def close(self) -> None:
        self.client.close()
        if self.embedded is not None:
            self.embedded.stop()
            self.embedded = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def connect(settings: Settings, *, quiet: bool = False) -> Connection:
    """A connection for one command (use it as a context manager). Raises ``NoServer``."""
    found = from_environment(settings)
    if found is not None:
        return Connection(found)
    layout = settings.layout
    found = running_server(layout)
    if found is not None:
        return Connection(found)
    # Imported only now: the server side is slow to import and most commands never need it.
    from hatoba.server import AlreadyRunning, EmbeddedServer, data_dir_in_use

    deadline = time.monotonic() + LOCKED_WAIT_SECONDS
    while True:
        found = running_server(layout)
        if found is not None:
            return Connection(found)
        if not data_dir_in_use(layout):
            embedded = EmbeddedServer(settings)
            try:
                running = embedded.start()
            except AlreadyRunning:
                # Someone else started a server between our check and our start.
                embedded.stop()
            except Exception as exc:
                embedded.stop()
                raise NoServer(
                    f"could not start an embedded control plane ({type(exc).__name__}: {exc}); "
                    "run `hatoba server` in another terminal to see its logs"
                ) from exc
            else:
                if not quiet:
                    from hatoba.cli.output import info

                    info(EMBEDDED_NOTICE, style="dim")
                return Connection(Endpoint(running.url, running.token), embedded)
        if time.monotonic() >= deadline:
            raise NoServer(
                f"another hatoba process holds the data directory {settings.home} but is not "
                "serving the API; wait for it to finish, or stop it and start a server with: "
                "hatoba server"
            )
        time.sleep(0.2)


@contextlib.contextmanager
def session(*, quiet: bool = False) -> Iterator[HatobaClient]:
    """The client for one command, from the environment's settings; closed (and an embedded
    control plane stopped) when the command ends, however it ends."""
    with connect(Settings.from_env(), quiet=quiet) as conn:
        yield conn.client

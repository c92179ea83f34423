"""One ``exec`` session over the WebSocket at ``/v1/tasks/{ref}/exec``.

Protocol (see ``hatoba.api.exec_ws``): first a JSON text message ``{container, argv, tty,
rows, cols}``; then binary frames whose first byte is the channel (0 stdin, 1 stdout,
2 stderr) and text frames of control JSON (``resize``/``stdinClosed`` from us, ``exit`` or
``error`` from the server).

Why threads instead of asyncio: the CLI is synchronous, and the only concurrency needed is
"copy stdin up while copying output down", which a single daemon reader thread does.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import shutil
import signal
import sys
import termios
import threading
import tty as ttymod
from collections.abc import Iterator
from types import FrameType
from typing import IO
from urllib.parse import quote

from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection, connect

from hatoba.client.errors import ApiError, ServerUnavailable
from hatoba.client.http import tls_context

STDIN, STDOUT, STDERR = 0, 1, 2
_CLOSE_STATUS = {4400: 400, 4401: 401}


def ws_url(base_url: str, ref: str) -> str:
    """``http://h:p`` -> ``ws://h:p/v1/tasks/{ref}/exec`` (https -> wss)."""
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://") :]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://") :]
    return f"{base}/v1/tasks/{quote(ref, safe=':')}/exec"


def run_exec(
    base_url: str,
    token: str,
    ref: str,
    argv: list[str],
    *,
    container: str | None = None,
    tty: bool = False,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
    stderr: IO[bytes] | None = None,
) -> int:
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout = stdout if stdout is not None else sys.stdout.buffer
    stderr = stderr if stderr is not None else sys.stderr.buffer
    rows, cols = _terminal_size()
    try:
        url = ws_url(base_url, ref)
        ws = connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            ssl=tls_context() if url.startswith("wss:") else None,
            max_size=None,
            open_timeout=30,
        )
    except (ConnectionRefusedError, TimeoutError) as exc:
        raise ServerUnavailable(f"no hatoba server at {base_url} ({exc})") from exc
    except InvalidStatus as exc:
        status = exc.response.status_code
        message = f"exec refused by the server (HTTP {status})"
        raise ApiError(status, f"HTTP{status}", message) from None
    except (OSError, WebSocketException) as exc:
        raise ServerUnavailable(f"could not open exec session at {base_url} ({exc})") from exc
    with ws:
        start = {"container": container, "argv": argv, "tty": tty, "rows": rows, "cols": cols}
        ws.send(json.dumps(start))
        stop = threading.Event()
        pump = threading.Thread(
            target=_pump_stdin, args=(ws, stdin, stop), name="hatoba-exec-stdin", daemon=True
        )
        with _raw_terminal(stdin if tty else None), _forward_resize(ws if tty else None):
            pump.start()
            try:
                return _receive(ws, stdout, stderr)
            finally:
                stop.set()


def _receive(ws: ClientConnection, stdout: IO[bytes], stderr: IO[bytes]) -> int:
    try:
        for message in ws:
            if isinstance(message, bytes):
                if not message:
                    continue
                out = stderr if message[0] == STDERR else stdout
                out.write(message[1:])
                out.flush()
                continue
            ctl = json.loads(message)
            if "exit" in ctl:
                return int(ctl["exit"])
            if "error" in ctl:
                code = ws.close_code if ws.close_code is not None else 4400
                raise ApiError.from_body(_CLOSE_STATUS.get(code, 400), ctl, "exec failed")
    except ConnectionClosed as exc:
        raise ServerUnavailable(f"exec session closed before the command exited ({exc})") from exc
    raise ServerUnavailable("exec session closed before the command exited")


def _pump_stdin(ws: ClientConnection, stdin: IO[bytes], stop: threading.Event) -> None:
    """Copy stdin up as channel-0 frames until EOF (then say so) or until told to stop."""
    try:
        fd: int | None = stdin.fileno()
    except (OSError, AttributeError, io.UnsupportedOperation):
        fd = None
    try:
        while not stop.is_set():
            if fd is not None:
                ready, _, _ = select.select([fd], [], [], 0.2)
                if not ready:
                    continue
                data = os.read(fd, 65536)
            else:
                data = stdin.read(65536)
            if not data:
                ws.send(json.dumps({"stdinClosed": True}))
                return
            ws.send(bytes([STDIN]) + data)
    except (ConnectionClosed, OSError, ValueError):
        return


def _terminal_size() -> tuple[int, int]:
    size = shutil.get_terminal_size((80, 24))
    return size.lines, size.columns


@contextlib.contextmanager
def _raw_terminal(stdin: IO[bytes] | None) -> Iterator[None]:
    """Raw mode for the local terminal (keys go to the remote side), always restored."""
    if stdin is None:
        yield
        return
    try:
        fd = stdin.fileno()
        saved = termios.tcgetattr(fd)
    except (OSError, AttributeError, io.UnsupportedOperation, termios.error):
        yield
        return
    try:
        ttymod.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _forward_resize(ws: ClientConnection | None) -> Iterator[None]:
    """Send ``{"resize": [rows, cols]}`` on SIGWINCH (main thread only, where signals work)."""
    if ws is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def send_size() -> None:
        with contextlib.suppress(ConnectionClosed, OSError):
            ws.send(json.dumps({"resize": list(_terminal_size())}))

    def on_winch(_sig: int, _frame: FrameType | None) -> None:
        # Not from the handler itself: it may interrupt this thread inside ws.send's lock.
        threading.Thread(target=send_size, name="hatoba-exec-resize", daemon=True).start()

    previous = signal.signal(signal.SIGWINCH, on_winch)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)

"""The cardscan HTTP JSON API: accepts business cards into the SQLite queue and reports on them.

    POST /cards            {"name": "...", "text": "..."}  -> 202 {"id": 1, "status": "queued"}
    GET  /cards/{id}       one card, with its parsed result once done
    GET  /cards?status=done&limit=100
    GET  /stats            {"queued": n, "working": n, "done": n, "failed": n}
    GET  /healthz          200 when the DB answers and is migrated, else 503

Binds 127.0.0.1:$CARDSCAN_PORT (default 8080) with SO_REUSEPORT, so several replicas share
the port and the kernel spreads connections between them. SIGTERM: stop accepting, finish
the requests in flight, exit 0. ``CARDSCAN_API_BROKEN=1`` makes it exit 1 at start (a bad
release, to watch a deployment's circuit breaker roll back).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from db import (
    SCHEMA_VERSION,
    STATUSES,
    ConfigError,
    connect,
    current_version,
    db_path,
    env_number,
    setup_logging,
)

MAX_BODY = 64 * 1024
MAX_NAME = 200
MAX_TEXT = 10_000
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
THREAD_STACK_BYTES = 512 * 1024
"""Each request runs in a thread (at most ``CARDSCAN_API_THREADS``, default 16): with glibc's
default 8 MiB stacks a handful would exhaust a 128 MiB address-space limit, which is how
hatoba enforces ``memory`` where cgroups are not available."""
CARD_COLUMNS = "id, name, status, submitted_at, updated_at, worker, attempts, payload, result"

log = setup_logging("api")


class ApiError(Exception):
    """An error response: ``{"error": message, "field": field}`` with this status."""

    def __init__(self, status: HTTPStatus, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class ReusePortServer(ThreadingHTTPServer):
    """A threading HTTP server whose port other processes can bind too (SO_REUSEPORT)."""

    allow_reuse_address = True
    daemon_threads = False  # server_close() waits for requests in flight
    block_on_close = True

    def __init__(self, address: tuple[str, int], db: str, max_threads: int) -> None:
        self.db = db
        # at most this many requests at once; more wait in the kernel's accept queue
        self.slots = threading.BoundedSemaphore(max_threads)
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self.slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def card_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "submitted_at": row["submitted_at"],
        "updated_at": row["updated_at"],
        "worker": row["worker"],
        "attempts": row["attempts"],
        "text": row["payload"],
        "result": json.loads(row["result"]) if row["result"] else None,
    }


def validate_card(body: Any) -> tuple[str, str]:
    """The (name, text) of a POST /cards body, or an ApiError naming the bad field."""
    if not isinstance(body, dict):
        raise ApiError(HTTPStatus.BAD_REQUEST, "the body must be a JSON object")
    for key in body:
        if key not in ("name", "text"):
            raise ApiError(
                HTTPStatus.BAD_REQUEST, f"{key}: unknown field (expected name and text)", key
            )
    values: list[str] = []
    for field, limit in (("name", MAX_NAME), ("text", MAX_TEXT)):
        value = body.get(field)
        if value is None:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"{field}: required", field)
        if not isinstance(value, str):
            raise ApiError(HTTPStatus.BAD_REQUEST, f"{field}: must be a string", field)
        if not value.strip():
            raise ApiError(HTTPStatus.BAD_REQUEST, f"{field}: must not be empty", field)
        if len(value) > limit:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, f"{field}: must be at most {limit} characters", field
            )
        values.append(value)
    return values[0], values[1]


class Handler(BaseHTTPRequestHandler):
    server: ReusePortServer
    server_version = "cardscan/1"

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: _dispatch logs one line per request itself."""

    def _dispatch(self, method: str) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        try:
            status, payload = self._route(method, parts, parse_qs(url.query))
        except ApiError as e:
            status, payload = e.status, {"error": e.message, "field": e.field}
        except sqlite3.Error as e:
            log.warning("database error on %s %s: %s", method, self.path, e)
            status, payload = HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"database: {e}"}
        body = json.dumps(payload).encode()
        note = ""
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if status == HTTPStatus.ACCEPTED:
                self.send_header("Location", f"/cards/{payload['id']}")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            note = " (client went away)"
        elapsed_ms = (time.monotonic() - started) * 1000
        log.info("%s %s %d %.1fms%s", method, self.path, status, elapsed_ms, note)

    def _route(
        self, method: str, parts: list[str], query: dict[str, list[str]]
    ) -> tuple[HTTPStatus, dict[str, Any]]:
        routes = {
            ("cards",): {"POST": self._create, "GET": lambda: self._list(query)},
            ("healthz",): {"GET": self._health},
            ("stats",): {"GET": self._stats},
        }
        if len(parts) == 2 and parts[0] == "cards":
            handlers = {"GET": lambda: self._get(parts[1])}
        else:
            handlers = routes.get(tuple(parts), {})
        if not handlers:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no such resource: {self.path}")
        if method not in handlers:
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed here")
        return handlers[method]()

    def _db(self) -> sqlite3.Connection:
        return connect(self.server.db)

    def _read_json(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if length > MAX_BODY:
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"the body is not valid JSON: {e}") from None

    def _create(self) -> tuple[HTTPStatus, dict[str, Any]]:
        name, text = validate_card(self._read_json())
        conn = self._db()
        try:
            cur = conn.execute("INSERT INTO cards (name, payload) VALUES (?, ?)", (name, text))
        finally:
            conn.close()
        return HTTPStatus.ACCEPTED, {"id": cur.lastrowid, "status": "queued"}

    def _get(self, raw_id: str) -> tuple[HTTPStatus, dict[str, Any]]:
        if not raw_id.isdigit():
            raise ApiError(HTTPStatus.NOT_FOUND, f"no card {raw_id!r}: ids are integers", "id")
        conn = self._db()
        try:
            row = conn.execute(
                f"SELECT {CARD_COLUMNS} FROM cards WHERE id = ?", (int(raw_id),)
            ).fetchone()
        finally:
            conn.close()
        if row is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no card {raw_id}", "id")
        return HTTPStatus.OK, card_json(row)

    def _list(self, query: dict[str, list[str]]) -> tuple[HTTPStatus, dict[str, Any]]:
        status = query.get("status", [None])[-1]
        if status is not None and status not in STATUSES:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, f"status: must be one of {', '.join(STATUSES)}", "status"
            )
        raw_limit = query.get("limit", [str(DEFAULT_LIMIT)])[-1]
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise ApiError(
                HTTPStatus.BAD_REQUEST, f"limit: must be an integer from 1 to {MAX_LIMIT}", "limit"
            )
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        conn = self._db()
        try:
            rows = conn.execute(
                f"SELECT {CARD_COLUMNS} FROM cards {where} ORDER BY id LIMIT ?",
                [*params, int(raw_limit)],
            ).fetchall()
        finally:
            conn.close()
        return HTTPStatus.OK, {"cards": [card_json(r) for r in rows]}

    def _stats(self) -> tuple[HTTPStatus, dict[str, Any]]:
        conn = self._db()
        try:
            rows = conn.execute("SELECT status, COUNT(*) FROM cards GROUP BY status").fetchall()
        finally:
            conn.close()
        counts = dict.fromkeys(STATUSES, 0)
        counts.update({row[0]: row[1] for row in rows})
        return HTTPStatus.OK, counts

    def _health(self) -> tuple[HTTPStatus, dict[str, Any]]:
        try:
            conn = self._db()
            try:
                version = current_version(conn)
            finally:
                conn.close()
        except sqlite3.Error as e:
            return HTTPStatus.SERVICE_UNAVAILABLE, {"status": "unavailable", "error": str(e)}
        if version < SCHEMA_VERSION:
            return HTTPStatus.SERVICE_UNAVAILABLE, {
                "status": "unavailable",
                "error": f"schema version {version}, want {SCHEMA_VERSION}: run migrate.py",
            }
        return HTTPStatus.OK, {"status": "ok", "schema_version": version}


def main() -> int:
    try:
        path = db_path()
        port = int(os.environ.get("CARDSCAN_PORT", "8080"))
        max_threads = int(env_number("CARDSCAN_API_THREADS", 16, minimum=1))
    except ConfigError as e:
        log.error("%s", e)
        return 2
    except ValueError:
        log.error("CARDSCAN_PORT=%r is not a port number", os.environ["CARDSCAN_PORT"])
        return 2
    if os.environ.get("CARDSCAN_API_BROKEN", "").strip() not in ("", "0"):
        log.error("CARDSCAN_API_BROKEN is set: refusing to start (a simulated bad release)")
        return 1
    threading.stack_size(THREAD_STACK_BYTES)
    # the DB is opened per request, so the API starts (and reports 503) before migrations
    try:
        server = ReusePortServer(("127.0.0.1", port), path, max_threads)
    except OSError as e:
        log.error("cannot listen on 127.0.0.1:%d: %s", port, e)
        return 1

    stopping: list[str] = []

    def stop(signum: int, _frame: object) -> None:
        # only a flag: a signal handler must not take locks the interrupted code may hold
        stopping.append(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    serving = threading.Thread(target=server.serve_forever, args=(0.2,), name="serve")
    serving.start()
    log.info("listening on http://127.0.0.1:%d (db %s)", port, path)
    while not stopping and serving.is_alive():
        time.sleep(0.1)
    if not stopping:
        log.error("the server thread stopped unexpectedly")
        server.server_close()
        return 1
    log.info("%s: finishing requests in flight, then exiting", stopping[0])
    server.shutdown()
    serving.join()
    server.server_close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

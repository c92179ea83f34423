"""The cardscan worker: takes queued cards from SQLite one at a time and extracts contact fields.

Claiming is one ``UPDATE ... WHERE id = (SELECT ... LIMIT 1) AND status = 'queued'`` inside
``BEGIN IMMEDIATE`` (SQLite's single writer lock), so any number of workers never take the
same card. "Processing" parses name, email, phone and company out of the card's text with
regular expressions and sleeps ``CARDSCAN_WORK_MS`` (default 200) to stand in for OCR.

Cards left ``working`` longer than ``CARDSCAN_LEASE_SECONDS`` (default 60), because their
worker was killed, go back to the queue; after ``CARDSCAN_MAX_ATTEMPTS`` (default 3) they are
marked failed. SIGTERM (scale-in, deployments): finish the current card, then exit 0.

    CARDSCAN_DB=/tmp/cardscan.db python3 worker.py
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import sys
import time
from dataclasses import dataclass
from typing import Any

from db import (
    NOW,
    SCHEMA_VERSION,
    ConfigError,
    connect,
    current_version,
    db_path,
    env_number,
    setup_logging,
)

IDLE_POLL_SECONDS = 0.2
REAP_EVERY_SECONDS = 1.0

log = setup_logging("worker")

LABEL_RE = re.compile(
    r"^(?P<label>name|e-?mail|tel|phone|mobile|company|organi[sz]ation)\s*[:\uff1a]\s*(?P<value>.+)$",
    re.IGNORECASE,
)
LABELS = {
    "name": "name",
    "email": "email",
    "e-mail": "email",
    "tel": "phone",
    "phone": "phone",
    "mobile": "phone",
    "company": "company",
    "organization": "company",
    "organisation": "company",
}
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
PHONE_RE = re.compile(r"\+?\(?\d[\d ()./-]{5,}\d")
COMPANY_RE = re.compile(
    r"\b(?:Inc|Ltd|LLC|GmbH|Corp|Corporation|Co|K\.K|S\.A|PLC|Limited|Labs)\b\.?"
    r"|株式会社|合同会社",
)
NAME_RE = re.compile(r"[A-Z][A-Za-z'.-]*(?: [A-Z][A-Za-z'.-]*){1,3}")
FIELDS = ("name", "email", "phone", "company")


def parse_card(text: str) -> dict[str, str | None]:
    """Contact fields found in a card's text; ``None`` for those not found.

    ``Label: value`` lines win; otherwise an email or phone is recognised by its shape, a
    company by a legal suffix (Inc, GmbH, 株式会社, ...) and the name is the first line that
    looks like two to four capitalised words.
    """
    found: dict[str, str | None] = dict.fromkeys(FIELDS)
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        labelled = LABEL_RE.match(line)
        if labelled:
            field = LABELS[labelled["label"].lower()]
            value = labelled["value"].strip()
            if field == "email":
                match = EMAIL_RE.search(value)
                value = match[0] if match else value
            found[field] = found[field] or value
            continue
        email = EMAIL_RE.search(line)
        if email:
            found["email"] = found["email"] or email[0]
            continue
        phone = PHONE_RE.search(line)
        if phone and sum(ch.isdigit() for ch in phone[0]) >= 7:
            found["phone"] = found["phone"] or phone[0].strip()
            continue
        if COMPANY_RE.search(line):
            found["company"] = found["company"] or line
        elif NAME_RE.fullmatch(line):
            found["name"] = found["name"] or line
    return found


@dataclass(frozen=True)
class Card:
    id: int
    name: str
    payload: str
    attempts: int


class Worker:
    def __init__(self, conn: sqlite3.Connection, worker_id: str) -> None:
        self.conn = conn
        self.worker_id = worker_id
        self.work_seconds = env_number("CARDSCAN_WORK_MS", 200) / 1000
        self.lease_seconds = env_number("CARDSCAN_LEASE_SECONDS", 60)
        self.max_attempts = int(env_number("CARDSCAN_MAX_ATTEMPTS", 3, minimum=1))
        self.stopping = False
        self.current: int | None = None
        self.processed = 0

    def stop(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.current is None:
            log.info("%s: exiting", name)
        else:
            log.info("%s: finishing card %d, then exiting", name, self.current)
        self.stopping = True

    def run(self) -> None:
        self.wait_for_schema()
        last_reap = float("-inf")
        while not self.stopping:
            try:
                if time.monotonic() - last_reap >= REAP_EVERY_SECONDS:
                    self.requeue_stale()
                    last_reap = time.monotonic()
                card = self.claim()
            except sqlite3.Error as e:
                log.warning("database error, retrying: %s", e)
                time.sleep(IDLE_POLL_SECONDS)
                continue
            if card is None:
                time.sleep(IDLE_POLL_SECONDS)
                continue
            self.process(card)

    def wait_for_schema(self) -> None:
        announced = False
        while not self.stopping and current_version(self.conn) < SCHEMA_VERSION:
            if not announced:
                log.info("waiting for the schema (version %d): run migrate.py", SCHEMA_VERSION)
                announced = True
            time.sleep(IDLE_POLL_SECONDS)

    def claim(self) -> Card | None:
        """Take the oldest queued card, atomically; None when the queue is empty."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            claimed = conn.execute(
                f"""UPDATE cards
                       SET status = 'working', worker = ?, attempts = attempts + 1,
                           updated_at = {NOW}
                     WHERE id = (SELECT id FROM cards WHERE status = 'queued'
                                  ORDER BY id LIMIT 1)
                       AND status = 'queued'""",
                (self.worker_id,),
            ).rowcount
            row = None
            if claimed:
                row = conn.execute(
                    """SELECT id, name, payload, attempts FROM cards
                        WHERE status = 'working' AND worker = ?
                        ORDER BY updated_at DESC, id DESC LIMIT 1""",
                    (self.worker_id,),
                ).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if row is None:
            return None
        self.current = row["id"]
        return Card(row["id"], row["name"], row["payload"], row["attempts"])

    def process(self, card: Card) -> None:
        started = time.monotonic()
        fields = parse_card(card.payload)
        time.sleep(self.work_seconds)  # "OCR"; a signal does not cut it short (PEP 475)
        if any(fields.values()):
            status, result = "done", dict(fields)
        else:
            status, result = "failed", {"error": "no contact details found in the text"}
        self.finish(card, status, result, time.monotonic() - started)

    def finish(self, card: Card, status: str, result: dict[str, Any], elapsed: float) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                stored = self.conn.execute(
                    f"""UPDATE cards SET status = ?, result = ?, updated_at = {NOW}
                         WHERE id = ? AND status = 'working' AND worker = ?""",
                    (status, json.dumps(result), card.id, self.worker_id),
                ).rowcount
                break
            except sqlite3.Error as e:  # keep the work: retry a locked DB for a while
                if time.monotonic() > deadline:
                    log.error("card %d: giving up storing the result: %s", card.id, e)
                    self.current = None
                    return
                log.warning("card %d: storing the result failed, retrying: %s", card.id, e)
                time.sleep(IDLE_POLL_SECONDS)
        self.current = None
        if not stored:
            log.warning(
                "card %d: lease lost (requeued after %gs), result dropped",
                card.id,
                self.lease_seconds,
            )
            return
        self.processed += 1
        details = " ".join(f"{k}={v!r}" for k, v in result.items())
        log.info(
            "card %d %s in %.0fms (attempt %d): %s",
            card.id,
            status,
            elapsed * 1000,
            card.attempts,
            details,
        )

    def requeue_stale(self) -> None:
        """Cards still 'working' past the lease lost their worker: queue them again, or fail
        them once they have used up their attempts."""
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            stale = conn.execute(
                """SELECT id, worker, attempts, updated_at FROM cards
                    WHERE status = 'working'
                      AND updated_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)""",
                (f"-{self.lease_seconds} seconds",),
            ).fetchall()
            for row in stale:
                give_up = row["attempts"] >= self.max_attempts
                conn.execute(
                    f"""UPDATE cards SET status = ?, result = ?, updated_at = {NOW}
                         WHERE id = ? AND status = 'working'""",
                    (
                        "failed" if give_up else "queued",
                        json.dumps({"error": f"abandoned {row['attempts']} times"})
                        if give_up
                        else None,
                        row["id"],
                    ),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        for row in stale:
            log.warning(
                "card %d %s: %s held it since %s (lease %gs, attempt %d of %d)",
                row["id"],
                "failed" if row["attempts"] >= self.max_attempts else "requeued",
                row["worker"],
                row["updated_at"],
                self.lease_seconds,
                row["attempts"],
                self.max_attempts,
            )


def main() -> int:
    task = os.environ.get("HATOBA_TASK_ID", "")
    worker_id = f"{task[:12] or socket.gethostname()}:{os.getpid()}"
    try:
        conn = connect(db_path())
        worker = Worker(conn, worker_id)
    except ConfigError as e:
        log.error("%s", e)
        return 2
    except sqlite3.Error as e:
        log.error("cannot open the database: %s", e)
        return 1
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    log.info(
        "worker %s started (work %gms, lease %gs)",
        worker_id,
        worker.work_seconds * 1000,
        worker.lease_seconds,
    )
    try:
        worker.run()
    finally:
        conn.close()
    log.info("worker %s stopped after %d cards", worker_id, worker.processed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The nightly report: how many cards there are in each status, and how many were finished
(done or failed) in the last 24 hours. Run by the ``cardscan-report`` job (see hatoba.yaml).

Prints one JSON line on stdout (the job's log): ``{"queued": n, "working": n, "done": n,
"failed": n, "total": n, "finishedLastDay": n}``. Exit codes: 0 reported, 1 database error
(hatoba retries it, as the job says), 2 configuration error, 3 the schema is missing (the
``cardscan-migrate`` task has not run yet).

    CARDSCAN_DB=/tmp/cardscan.db python3 report.py
"""

from __future__ import annotations

import json
import sqlite3
import sys

from db import STATUSES, ConfigError, connect, current_version, db_path, setup_logging


def report(conn: sqlite3.Connection) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    rows = conn.execute("SELECT status, COUNT(*) FROM cards GROUP BY status").fetchall()
    counts.update({row[0]: int(row[1]) for row in rows})
    finished = conn.execute(
        "SELECT COUNT(*) FROM cards WHERE status IN ('done', 'failed') "
        "AND updated_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day')"
    ).fetchone()
    return {**counts, "total": sum(counts.values()), "finishedLastDay": int(finished[0])}


def main() -> int:
    log = setup_logging("report")
    try:
        path = db_path()
    except ConfigError as e:
        log.error("%s", e)
        return 2
    try:
        conn = connect(path)
        try:
            if current_version(conn) == 0:
                log.error("%s has no cardscan schema; run migrate.py first", path)
                return 3
            counts = report(conn)
        finally:
            conn.close()
    except sqlite3.Error as e:
        log.error("cannot read %s: %s", path, e)
        return 1
    sys.stdout.write(json.dumps(counts) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

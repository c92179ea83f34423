"""Container health check for the API: exit 0 when GET /healthz answers 200, else 1.

    CARDSCAN_PORT=8080 python3 healthcheck.py       # or: python3 healthcheck.py --port 8080

hatoba runs it inside the task (with the task's environment). With SO_REUSEPORT the kernel
picks which replica answers, so this checks "the service on this port is up and its DB is
migrated", not necessarily this very replica.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("CARDSCAN_PORT", "8080")))
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError as e:
        print(f"unhealthy: {url}: {e}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

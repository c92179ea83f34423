"""A tiny load generator: post sample business cards to the cardscan API.

    python3 submit.py --url http://127.0.0.1:8080 -n 100          # prints the new cards' ids
    python3 submit.py -n 50 --wait                                 # then waits for the queue

``--wait`` polls GET /stats until nothing is queued or working, printing progress to stderr,
then prints the final counts; it exits 1 if the timeout passes first.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request
from typing import Any

FIRST = ["Aiko", "Ben", "Chloe", "Daiki", "Elena", "Farid", "Grace", "Haruto", "Ines", "Jonas"]
LAST = ["Tanaka", "Okafor", "Martin", "Suzuki", "Rossi", "Haddad", "Lee", "Sato", "Silva"]
COMPANIES = ["Hatoba Logistics Inc.", "Kaiyo Shipping K.K.", "Northwind GmbH", "Blue Pier Ltd"]
TITLES = ["Harbour Master", "Head of Operations", "Software Engineer", "Sales Director"]


def sample_card(rng: random.Random, index: int) -> dict[str, str]:
    """One card's text in one of a few layouts (plain lines, or "Label: value" lines)."""
    first, last, company = rng.choice(FIRST), rng.choice(LAST), rng.choice(COMPANIES)
    email = f"{first.lower()}.{last.lower()}@{company.split()[0].lower()}.example"
    phone = f"+81 {rng.randint(10, 99)}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
    if index % 2:
        lines = [f"{first} {last}", rng.choice(TITLES), company, email, f"Tel {phone}"]
    else:
        lines = [f"Name: {first} {last}", f"Company: {company}", f"Email: {email}", phone]
    return {"name": f"sample-{index:04d}.jpg", "text": "\n".join(lines)}


def call(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def wait_until_drained(url: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        stats = call("GET", f"{url}/stats")
        print(
            "queued {queued} working {working} done {done} failed {failed}".format(**stats),
            file=sys.stderr,
        )
        if stats["queued"] == 0 and stats["working"] == 0:
            print(json.dumps(stats))
            return 0
        if time.monotonic() > deadline:
            print(f"timed out after {timeout:g}s", file=sys.stderr)
            return 1
        time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description="Post sample business cards to cardscan.")
    parser.add_argument(
        "--url",
        default=os.environ.get("CARDSCAN_URL", "http://127.0.0.1:8080"),
        help="the API's base URL (default $CARDSCAN_URL or http://127.0.0.1:8080)",
    )
    parser.add_argument("-n", type=int, default=100, help="how many cards (default 100)")
    parser.add_argument("--wait", action="store_true", help="wait until all are processed")
    parser.add_argument("--timeout", type=float, default=600, help="for --wait (seconds)")
    parser.add_argument("--seed", type=int, default=None, help="for repeatable cards")
    args = parser.parse_args()
    url = args.url.rstrip("/")
    rng = random.Random(args.seed)
    try:
        for i in range(args.n):
            print(call("POST", f"{url}/cards", sample_card(rng, i))["id"], flush=True)
        return wait_until_drained(url, args.timeout) if args.wait else 0
    except urllib.error.HTTPError as e:
        print(f"{e.url}: {e.code} {e.read().decode(errors='replace')}", file=sys.stderr)
    except OSError as e:
        print(f"{url}: {e} (is the API running?)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

"""Post sample SMTPeter webhooks to a running exporter (the Compose demo, or any other).

    .venv/bin/python deploy/compose/send-traffic.py                 # 2,000 events, ~1 minute
    .venv/bin/python deploy/compose/send-traffic.py --events 500 --rate 0
    .venv/bin/python deploy/compose/send-traffic.py --blocking microsoft

Every kind is posted as SMTPeter forms it (``benchmarks/traffic.py``): deliveries, failures
with the replies large providers give, opens, clicks, raw bounce messages and spam
complaints. ``--blocking microsoft`` adds Microsoft refusing the sender, which the
provider-blocking alert and the dashboards show. It stops after ``--events`` posts and
prints what was answered.
"""

from __future__ import annotations

import argparse
import base64
import collections
import http.client
import sys
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path

# The generator lives in the repository's benchmarks package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.traffic import BLOCKED, Post, Traffic


def _posts(traffic: Traffic, count: int, blocking: str | None) -> Iterator[Post]:
    for index, post in enumerate(traffic.mix(count, failure_share=0.05)):
        # One post in five is a refusal by the blocking provider, from the start.
        yield traffic.blocked(blocking) if blocking and index % 5 == 4 else post


def send(url: str, count: int, rate: float, blocking: str | None, token: str | None) -> int:
    """Post ``count`` events to the exporter at ``url``; the number answered 2xx."""
    target = urllib.parse.urlsplit(url)
    if target.scheme not in ("http", "https") or not target.hostname:
        raise SystemExit(f"not an http(s) URL: {url}")
    connection_type = (
        http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(target.hostname, target.port, timeout=10)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if token:
        basic = base64.b64encode(f"smtpeter:{token}".encode()).decode()
        headers["Authorization"] = f"Basic {basic}"
    prefix = target.path.rstrip("/")
    answered: collections.Counter[int] = collections.Counter()
    pause = 1 / rate if rate > 0 else 0.0
    started = time.monotonic()
    try:
        for index, (path, fields) in enumerate(_posts(Traffic(seed=42), count, blocking)):
            body = urllib.parse.urlencode(fields).encode()
            connection.request("POST", prefix + path, body, headers)
            response = connection.getresponse()
            response.read()
            answered[response.status] += 1
            if pause:
                # Paced by the clock, not by sleeps in a row, so slow answers do not add up.
                delay = started + (index + 1) * pause - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
    finally:
        connection.close()
    summary = ", ".join(f"{n} x {status}" for status, n in sorted(answered.items()))
    print(f"posted {sum(answered.values())} events to {url}: {summary}")
    return sum(n for status, n in answered.items() if 200 <= status < 300)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default="http://127.0.0.1:10587", help="the exporter's webhook listener"
    )
    parser.add_argument("--events", type=int, default=2000, help="how many to post")
    parser.add_argument(
        "--rate", type=float, default=40.0, help="events per second; 0 posts as fast as it can"
    )
    parser.add_argument(
        "--blocking", choices=sorted(BLOCKED), help="a provider that refuses the sender"
    )
    parser.add_argument("--token", help="the token of --auth.mode=token (sent as HTTP Basic)")
    args = parser.parse_args(argv)
    if args.events < 1 or args.rate < 0:
        parser.error("--events must be at least 1 and --rate not negative")
    accepted = send(args.url, args.events, args.rate, args.blocking, args.token)
    return 0 if accepted == args.events else 1


if __name__ == "__main__":
    sys.exit(main())

"""Webhook load: many signed deliveries, some of them repeated (Vambe's retries), shuffled, from many clients at
once, against gunicorn with two workers as the repository configures it. Prints a table; asserts nothing.

    .venv/bin/python -m bench.webhook_load [--deliveries 10000] [--database-url postgresql://...]

Without --database-url (or BENCH_DATABASE_URL) it runs on a fresh SQLite file. The floor is /healthz, measured
in the same run in batches interleaved with the deliveries' batches; the figure to read is the ratio.
"""

import argparse
import hashlib
import hmac
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from app.config import SANDBOX_WEBHOOK_SECRET

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def gunicorn(database_url: str, workers: int):
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_hex(32),
        "HANDOFF_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "FLASK_APP": "wsgi.py",
    }
    env.pop("VAMBE_API_KEY", None)  # the sandbox: its webhook secret is known
    subprocess.run([BIN / "flask", "db", "upgrade"], cwd=ROOT, env=env, check=True, capture_output=True)  # noqa: S603
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(  # noqa: S603
        [BIN / "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(log.read().decode()[-3000:]) from None
            time.sleep(0.1)  # waiting for a server to start, not synchronising a test
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def deliveries(count: int, duplicate_share: float) -> tuple[list[bytes], int]:
    """Signed-ready bodies: distinct messages from 200 contacts, plus repeats of some of them, shuffled."""
    distinct = round(count * (1 - duplicate_share))
    contacts = [str(uuid.uuid4()) for _ in range(200)]
    bodies = []
    for n in range(distinct):
        payload = {
            "event": "message.received",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "data": {"contact_id": contacts[n % len(contacts)], "message_id": f"load-{n}", "message_body": f"Hola {n}"},
        }
        bodies.append(json.dumps(payload).encode())
    rng = random.Random(7)  # noqa: S311  (a reproducible shuffle, not a secret)
    everything = bodies + [rng.choice(bodies) for _ in range(count - distinct)]
    rng.shuffle(everything)
    return everything, distinct


def post(session: requests.Session, url: str, body: bytes) -> tuple[int, float]:
    timestamp = str(int(time.time()))
    signature = hmac.new(SANDBOX_WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    started = time.perf_counter()
    response = session.post(
        url,
        data=body,
        headers={"content-type": "application/json", "x-vambe-timestamp": timestamp, "x-vambe-signature": signature},
        timeout=30,
    )
    return response.status_code, time.perf_counter() - started


def floor(session: requests.Session, url: str, _: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    return session.get(url, timeout=30).status_code, time.perf_counter() - started


def run(base: str, bodies: list[bytes], clients: int, batch: int) -> dict:
    sessions = [requests.Session() for _ in range(clients)]
    arms = {"webhook": [], "healthz": []}
    elapsed = {"webhook": 0.0, "healthz": 0.0}
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for start in range(0, len(bodies), batch):
            chunk = bodies[start : start + batch]
            # Interleaved: a batch of deliveries, then as many /healthz requests, on the same server and clients.
            for arm, call, url in (("webhook", post, "/webhooks/vambe"), ("healthz", floor, "/healthz")):
                began = time.perf_counter()
                results = list(
                    pool.map(
                        lambda item, call=call, url=url: call(sessions[item[0] % clients], base + url, item[1]),
                        enumerate(chunk),
                    )
                )
                elapsed[arm] += time.perf_counter() - began
                arms[arm].extend(results)
    return {arm: (results, elapsed[arm]) for arm, results in arms.items()}


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q * 100) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--duplicates", type=float, default=0.2)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()
    database_url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/load.sqlite"
    bodies, distinct = deliveries(args.deliveries, args.duplicates)

    with gunicorn(database_url, args.workers) as base:
        arms = run(base, bodies, args.clients, batch=500)
    engine = create_engine(database_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT count(*) FROM messages WHERE provider_message_id LIKE 'load-%'"))
        stored = stored.scalar()
    engine.dispose()

    webhook, webhook_time = arms["webhook"]
    healthz, healthz_time = arms["healthz"]
    latencies = [seconds * 1000 for _, seconds in webhook]
    print(f"database: {database_url.split('://')[0]}, {args.workers} gunicorn workers, {args.clients} clients")
    print(f"{'figure':<32} {'value':>12}")
    print(f"{'deliveries sent':<32} {len(bodies):>12}")
    print(f"{'distinct messages':<32} {distinct:>12}")
    print(f"{'messages stored':<32} {stored:>12}")
    print(f"{'5xx answers':<32} {sum(1 for status, _ in webhook if status >= 500):>12}")
    print(f"{'webhook throughput (req/s)':<32} {len(webhook) / webhook_time:>12.0f}")
    print(f"{'/healthz floor (req/s)':<32} {len(healthz) / healthz_time:>12.0f}")
    print(f"{'ratio to the floor':<32} {(len(webhook) / webhook_time) / (len(healthz) / healthz_time):>12.2f}")
    print(f"{'webhook p50 (ms)':<32} {quantile(latencies, 0.50):>12.1f}")
    print(f"{'webhook p99 (ms)':<32} {quantile(latencies, 0.99):>12.1f}")


if __name__ == "__main__":
    main()

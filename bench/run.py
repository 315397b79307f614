"""Benchmarks: each hot path as a ratio against a floor measured in the same run, the two arms interleaved
(A, B, A, B, ...) so that a busy machine slows both alike. Prints a table; asserts nothing.

    .venv/bin/python -m bench.run [--large 2000x50] [--small 100x100] [--repeat 40] [--postgres URL]

Two data sets are built with bulk inserts: small (100 conversations of 100 messages) and large (by default 2,000
of 50; the issue's full size is 10000x100, which takes a while to load). Each runs on a fresh SQLite file and,
given --postgres (a URL whose role may CREATE DATABASE), on two fresh PostgreSQL databases too.
"""

import argparse
import hashlib
import hmac
import json
import os
import re
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, Response, request
from flask_migrate import upgrade
from sqlalchemy import create_engine, event, text

from app import create_app
from app.clock import utcnow
from app.domain.accounts import create_user
from app.extensions import db
from app.models import Author, Conversation, Direction, Message, Outcome, Role
from app.sandbox.state import SandboxChannel, SandboxContact, SandboxMessage
from app.vambe import SEND_SESSION_MESSAGE_PATH

PASSWORD = "bench-password"  # noqa: S105


def build_data(conversations: int, per_conversation: int) -> list[int]:
    now = utcnow()
    db.session.add(SandboxChannel(id=1951, phone_number="56211111111", name="Ventas"))
    ids = []
    for n in range(conversations):
        contact_id = str(uuid.uuid4())
        last_inbound = now - timedelta(minutes=n * 7 % (48 * 60))
        db.session.add(
            SandboxContact(id=contact_id, name=f"Cliente {n}", phone=f"5698{n:07d}", channel_id=1951, created_at=now)
        )
        db.session.add(
            SandboxMessage(
                id=str(uuid.uuid4()),
                contact_id=contact_id,
                direction="INBOUND",
                sender="customer",
                body="Hola",
                status="read",
                created_at=last_inbound,
            )
        )
        conversation = Conversation(
            vambe_contact_id=contact_id,
            phone=f"+5698{n:07d}",
            name=f"Cliente {n}",
            last_inbound_at=last_inbound,
            last_message_at=last_inbound,
            created_at=now,
        )
        db.session.add(conversation)
        db.session.flush()
        ids.append(conversation.id)
        for m in range(per_conversation):
            inbound = m % 2 == 0
            db.session.add(
                Message(
                    conversation_id=conversation.id,
                    direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                    author=Author.CUSTOMER if inbound else Author.ASSISTANT,
                    body=f"Mensaje {m} sobre el pedido {n}",
                    provider_message_id=str(uuid.uuid4()),
                    outcome=Outcome.RECEIVED if inbound else Outcome.READ,
                    occurred_at=last_inbound - timedelta(minutes=per_conversation - m),
                    created_at=now,
                    updated_at=now,
                )
            )
        if n % 500 == 0:
            db.session.commit()
    db.session.commit()
    create_user("bench@example.com", PASSWORD, Role.AGENT, now=now)
    return ids


SEND_FLOOR_BODY = {"message": "Hola", "contact_id": None, "type": "text", "pause_assistant": False}
PARTIAL = {"HX-Request": "true", "HX-Request-Type": "partial"}


@dataclass
class Install:
    """One data set behind one app, signed in as an agent, with the bare routes the floors need."""

    app: Flask
    client: object
    conversation_ids: list[int]
    contact_ids: list[str]
    csrf: str = ""
    inbox_bytes: bytes = b""


def install(url: str, conversations: int, per_conversation: int) -> Install:
    app = create_app(environ={"DATABASE_URL": url, "SECRET_KEY": "bench-" * 8})
    add_floors(app)
    with app.app_context():
        upgrade()
        ids = build_data(conversations, per_conversation)
        contacts = [c.vambe_contact_id for c in db.session.scalars(db.select(Conversation).limit(50))]
    client = app.test_client()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"email": "bench@example.com", "password": PASSWORD, "csrf_token": token})
    setup = Install(app, client, ids, contacts)
    page = client.get(f"/conversations/{ids[1]}").text
    setup.csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    setup.inbox_bytes = client.get("/").data
    return setup


def add_floors(app: Flask) -> None:
    """Bare routes: the least any answer can cost on this machine, through the same Flask and test client."""

    @app.get("/__floor/bytes")
    def floor_bytes():
        return Response(app.config["FLOOR_BYTES"], mimetype="text/html")

    @app.post("/__floor/body")
    def floor_body():
        request.get_data()
        return "", 200


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def interleaved(arm_a, arm_b, repeat: int) -> list[float]:
    """Per-pair ratios A/B, each pair run back to back (the order alternating), after a warm-up of each."""
    arm_a(), arm_b()
    ratios = []
    for n in range(repeat):
        if n % 2:
            b, a = timed(arm_b), timed(arm_a)
        else:
            a, b = timed(arm_a), timed(arm_b)
        ratios.append(a / b)
    return ratios


def signed_webhook(setup: Install):
    secret = setup.app.config["VAMBE_WEBHOOK_SECRET"]

    def post():
        body = json.dumps(
            {
                "event": "message.received",
                "timestamp": utcnow().isoformat(),
                "data": {"contact_id": setup.contact_ids[0], "message_id": uuid.uuid4().hex, "message_body": "hola"},
            }
        ).encode()
        stamp = str(int(time.time()))
        signature = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        response = setup.client.post(
            "/webhooks/vambe",
            data=body,
            headers={"content-type": "application/json", "x-vambe-timestamp": stamp, "x-vambe-signature": signature},
        )
        response.close()

    return post


def comparisons(small: Install, large: Install) -> dict:
    """Each row: (arm measured, floor arm, target ratio)."""
    large.app.config["FLOOR_BYTES"] = large.inbox_bytes
    conversation = large.conversation_ids[len(large.conversation_ids) // 2]
    live_page = large.client.get(f"/conversations/{conversation}/live", headers=PARTIAL).text
    unchanged_poll = re.search(r'hx-get="([^"]+)" hx-trigger="every 3s"', live_page).group(1).replace("&amp;", "&")
    vambe = large.app.extensions["vambe_client"]
    alerts = large.client.get("/alerts", headers=PARTIAL).text
    unchanged_alerts = re.search(r'hx-get="([^"]+)" hx-trigger="every 5s"', alerts).group(1).replace("&amp;", "&")

    def reply_via_form():
        large.client.post(
            f"/conversations/{large.conversation_ids[1]}/messages",
            data={"csrf_token": large.csrf, "idempotency_key": uuid.uuid4().hex, "message": "Hola, te ayudo"},
            headers=PARTIAL,
        )

    def reply_direct():
        body = {**SEND_FLOOR_BODY, "contact_id": large.contact_ids[1]}
        vambe.session.post(vambe.base_url + SEND_SESSION_MESSAGE_PATH, json=body, timeout=10)

    def body_floor():
        large.client.post("/__floor/body", data=b"x" * 300, headers={"content-type": "application/json"})

    return {
        "inbox search, large / small": (
            lambda: large.client.get("/?q=pedido"),
            lambda: small.client.get("/?q=pedido"),
            1.5,
        ),
        "inbox page / bare route, same bytes": (
            lambda: large.client.get("/"),
            lambda: large.client.get("/__floor/bytes"),
            3,
        ),
        "conversation page, large / small": (
            lambda: large.client.get(f"/conversations/{conversation}"),
            lambda: small.client.get(f"/conversations/{small.conversation_ids[len(small.conversation_ids) // 2]}"),
            1.3,
        ),
        "unchanged live poll / bare route": (
            lambda: large.client.get(unchanged_poll, headers=PARTIAL),
            lambda: large.client.get("/__floor/bytes"),
            1,
        ),
        "header counts, large / small": (
            lambda: large.client.get("/alerts", headers=PARTIAL),
            lambda: small.client.get("/alerts", headers=PARTIAL),
            2,
        ),
        "unchanged header poll / bare route": (
            lambda: large.client.get(unchanged_alerts, headers=PARTIAL),
            lambda: large.client.get("/__floor/bytes"),
            1.5,
        ),
        "reply via the form / direct POST to the fake": (reply_via_form, reply_direct, 2),
        "webhook ingest / bare route reading the body": (signed_webhook(large), body_floor, 2),
    }


def statements_per_page(setup: Install) -> dict[str, int]:
    seen = []
    with setup.app.app_context():
        engine = db.engine
    listener = lambda *args: seen.append(1)  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    counts = {}
    for name, path in (("inbox", "/"), ("conversation", f"/conversations/{setup.conversation_ids[0]}")):
        seen.clear()
        setup.client.get(path)
        counts[name] = len(seen)
    event.remove(engine, "before_cursor_execute", listener)
    return counts


def report(label: str, small: Install, large: Install, repeat: int) -> None:
    print(f"\n{label}")
    print(f"| {'comparison':<46} | {'median':>7} | {'p10-p90':>13} | {'target':>7} |")
    print(f"|{'-' * 48}|{'-' * 9}|{'-' * 15}|{'-' * 9}|")
    for name, (arm, floor, target) in comparisons(small, large).items():
        ratios = sorted(interleaved(arm, floor, repeat))
        low, high = ratios[len(ratios) // 10], ratios[(len(ratios) * 9) // 10 - 1]
        print(f"| {name:<46} | {statistics.median(ratios):7.2f} | {low:5.2f}-{high:<7.2f} | <={target:>5} |")
    counts_small, counts_large = statements_per_page(small), statements_per_page(large)
    for page in counts_small:
        print(f"SQL statements, {page} page: {counts_small[page]} (small) / {counts_large[page]} (large)")


def size(text: str) -> tuple[int, int]:
    conversations, messages = text.lower().split("x")
    return int(conversations), int(messages)


def postgres_database(admin_url: str, name: str) -> str:
    engine = create_engine(admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin_url.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=size, default=(100, 100))
    parser.add_argument("--large", type=size, default=(2000, 50))
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--postgres", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="handoff-bench-")
    targets = [("SQLite", f"sqlite:///{folder}/small.sqlite", f"sqlite:///{folder}/large.sqlite")]
    if args.postgres:
        targets.append(
            (
                "PostgreSQL",
                postgres_database(args.postgres, "handoff_bench_small"),
                postgres_database(args.postgres, "handoff_bench_large"),
            )
        )
    for label, small_url, large_url in targets:
        small, large = install(small_url, *args.small), install(large_url, *args.large)
        report(
            f"{label}: small {args.small[0]}x{args.small[1]}, large {args.large[0]}x{args.large[1]}, "
            f"{args.repeat} interleaved pairs",
            small,
            large,
            args.repeat,
        )


if __name__ == "__main__":
    main()

"""Benchmarks: how fast the hot paths are on a realistic data set. Prints a table; asserts nothing.

    .venv/bin/python -m bench.run [--conversations 2000] [--messages-per-conversation 10]

Runs against a fresh SQLite file (or BENCH_DATABASE_URL, e.g. a PostgreSQL database you can drop).
Targets, checked by eye: inbox page < 150 ms, conversation page < 150 ms, webhook < 25 ms, send < 60 ms.
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
import tracemalloc
import uuid
from datetime import timedelta

from flask_migrate import upgrade

from app import create_app
from app.clock import utcnow
from app.domain.accounts import create_user
from app.extensions import db
from app.models import Author, Conversation, Direction, Message, Outcome, Role
from app.sandbox.state import SandboxChannel, SandboxContact, SandboxMessage

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


def timed(call, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--messages-per-conversation", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="handoff-bench-")
    url = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{folder}/bench.sqlite"
    app = create_app(environ={"DATABASE_URL": url, "SECRET_KEY": "bench-" * 8})
    with app.app_context():
        upgrade()
        started = time.perf_counter()
        ids = build_data(args.conversations, args.messages_per_conversation)
        load_seconds = time.perf_counter() - started
        contact_ids = [c.vambe_contact_id for c in db.session.scalars(db.select(Conversation).limit(50))]

    client = app.test_client()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get("/login").text).group(1)
    client.post("/login", data={"email": "bench@example.com", "password": PASSWORD, "csrf_token": token})
    conversation_url = f"/conversations/{ids[0]}"
    page = client.get(conversation_url).text
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    secret = app.config["VAMBE_WEBHOOK_SECRET"]

    def post_webhook():
        body = json.dumps(
            {
                "event": "message.received",
                "timestamp": utcnow().isoformat(),
                "data": {"contact_id": contact_ids[0], "message_id": uuid.uuid4().hex, "message_body": "hola"},
            }
        ).encode()
        stamp = str(int(time.time()))
        signature = hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        response = client.post(
            "/webhooks/vambe",
            data=body,
            headers={"content-type": "application/json", "x-vambe-timestamp": stamp, "x-vambe-signature": signature},
        )
        assert response.status_code == 200

    def send_reply():
        response = client.post(
            f"/conversations/{ids[1]}/messages",
            data={
                "csrf_token": csrf,
                "idempotency_key": uuid.uuid4().hex,
                "message": "Hola, te ayudo",
                "pause_assistant": "y",
            },
            headers={"HX-Request": "true", "HX-Request-Type": "partial"},
        )
        assert response.status_code == 200

    cases = {
        "inbox page (first 25)": lambda: client.get("/"),
        "inbox search by text": lambda: client.get("/?q=pedido+1999"),
        "inbox, window closing soonest": lambda: client.get("/?sort=closing_soon"),
        "conversation page": lambda: client.get(conversation_url),
        "conversation live poll": lambda: client.get(
            f"{conversation_url}/live", headers={"HX-Request": "true", "HX-Request-Type": "partial"}
        ),
        "webhook delivery (signed)": post_webhook,
        "send reply via sandbox": send_reply,
    }
    rows = []
    for name, call in cases.items():
        call()  # warm up
        samples = timed(call, args.repeat)
        # Memory in a separate pass: tracing slows Python down and would distort the times.
        tracemalloc.start()
        timed(call, 3)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        samples.sort()
        rows.append((name, statistics.median(samples), samples[int(len(samples) * 0.9) - 1], peak / 1024))

    backend = url.split(":", 1)[0]
    print(
        f"\nHandoff benchmark: {args.conversations} conversations x {args.messages_per_conversation} messages "
        f"on {backend}"
    )
    print(
        f"(data loaded in {load_seconds:.1f} s; {args.repeat} timed runs each; "
        "memory = peak Python allocation in one run)\n"
    )
    print(f"| {'case':<32} | {'median ms':>9} | {'p90 ms':>7} | {'peak KiB':>9} |")
    print(f"|{'-' * 34}|{'-' * 11}|{'-' * 9}|{'-' * 11}|")
    for name, median, p90, peak in rows:
        print(f"| {name:<32} | {median:9.1f} | {p90:7.1f} | {peak:9.0f} |")


if __name__ == "__main__":
    main()

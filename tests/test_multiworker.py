"""Several gunicorn workers and threads against one PostgreSQL database, under a burst of traffic.

The container's start-up (docker-entrypoint.sh) serves a fresh database with 3 workers x 4 threads.
Then 16 client threads, each with its own signed-in session, fire at once: distinct sends,
double-click storms (one idempotency key submitted 4 times at the same moment) and webhook
deliveries each repeated 3 times at the same moment. The database must end up with exactly one row
per idempotency key and per provider message id, every send settled, and no 5xx on the way.

Members of a storm meet at a barrier so that they really are concurrent. Each storm's members are
queued one after the other, so the pool (16 threads) always reaches the whole group: no deadlock.
"""

import json
import random
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from queue import Queue

import requests
from sqlalchemy import text

from app.clock import utcnow
from tests.conftest import csrf_token_from
from tests.test_production import (
    fresh_postgres_database,
    running_container,
    shape_a_received,
    sign_in,
    signed_headers,
    sql_engine,
)

CLIENT_THREADS = 16
DISTINCT_SENDS = 40
STORMS = 10
STORM_SIZE = 4
WEBHOOK_IDS = 20
WEBHOOK_COPIES = 3
HTTP_TIMEOUT = 30.0
BARRIER_TIMEOUT = 20.0
BATCH_WITHIN_SECONDS = 180.0
WEBHOOK_USER_AGENT = "handoff-multiworker-test/1.0"


@dataclass
class Outcomes:
    """What came back from the server, shared by the client threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    fired: int = 0

    def record(self, kind: str, status: int, expected: int, detail: str = "", accepted: bool = True) -> None:
        """One answer; an error unless it has the ``expected`` status and was ``accepted``."""
        with self.lock:
            self.fired += 1
            self.statuses[(kind, status)] += 1
            if status != expected or not accepted:
                self.errors.append(f"{kind}: HTTP {status} (expected {expected}) {' '.join(detail.split())[:160]}")

    def failed(self, kind: str, error: BaseException) -> None:
        with self.lock:
            self.fired += 1
            self.statuses[(kind, None)] += 1
            self.errors.append(f"{kind}: {type(error).__name__}: {str(error)[:300]}")

    @property
    def server_errors(self) -> int:
        return sum(count for (_, status), count in self.statuses.items() if status is not None and status >= 500)


def test_many_workers_keep_sends_and_webhooks_exactly_once(postgres_admin, tmp_path, record_property, request):
    password = "pw-" + secrets.token_hex(12)
    email = "burst-agent@handoff.example"
    webhook_secret = "whsec-" + secrets.token_hex(16)
    rng = random.Random(20250301)  # noqa: S311  (a reproducible order, not security)
    with fresh_postgres_database(postgres_admin) as (_, database_url):
        with running_container(
            tmp_path,
            database_url,
            SECRET_KEY=secrets.token_hex(32),
            VAMBE_WEBHOOK_SECRET=webhook_secret,
            GUNICORN_WORKERS="3",
            GUNICORN_THREADS="4",
        ) as server:
            created = server.flask("users", "create", email, "--password-stdin", stdin=password + "\n")
            assert created.returncode == 0, created.stdout + created.stderr
            seeded = server.flask("sandbox", "seed")
            assert seeded.returncode == 0 and "Seeded the sandbox" in seeded.stdout, seeded.stdout + seeded.stderr

            with sql_engine(database_url) as engine:
                with engine.connect() as connection:
                    conversations = connection.execute(
                        text("SELECT id, vambe_contact_id, last_inbound_at FROM conversations ORDER BY id")
                    ).all()
                now = utcnow()
                # Open windows with room to spare: the burst must not outlive them.
                open_ids = [
                    c.id
                    for c in conversations
                    if c.last_inbound_at and now - c.last_inbound_at < timedelta(hours=23, minutes=30)
                ]
                contact_ids = [c.vambe_contact_id for c in conversations if c.vambe_contact_id]
                assert len(open_ids) >= 2, conversations
                assert len(contact_ids) >= 4, conversations

                sessions: Queue = Queue()
                all_sessions = [requests.Session() for _ in range(CLIENT_THREADS)]
                outcomes = Outcomes()
                try:
                    csrf_tokens = {}

                    def sign_in_and_read_token(session: requests.Session) -> None:
                        login = sign_in(session, server.base_url, email, password)
                        assert login.status_code == 302, login.text[:500]
                        page = session.get(server.url(f"/conversations/{open_ids[0]}"), timeout=HTTP_TIMEOUT)
                        assert page.status_code == 200, page.text[:500]
                        csrf_tokens[id(session)] = csrf_token_from(page.text)

                    with ThreadPoolExecutor(max_workers=CLIENT_THREADS, thread_name_prefix="login") as pool:
                        for signed_in in pool.map(sign_in_and_read_token, all_sessions, timeout=BATCH_WITHIN_SECONDS):
                            assert signed_in is None
                    for session in all_sessions:
                        sessions.put(session)

                    def send(conversation_id: int, key: str, body: str, barrier: threading.Barrier | None) -> None:
                        session = sessions.get()
                        try:
                            form = {
                                "csrf_token": csrf_tokens[id(session)],
                                "idempotency_key": key,
                                "message": body,
                                "pause_assistant": "y",
                            }
                            if barrier is not None:
                                barrier.wait()
                            response = session.post(
                                server.url(f"/conversations/{conversation_id}/messages"),
                                data=form,
                                allow_redirects=False,
                                timeout=HTTP_TIMEOUT,
                            )
                            outcomes.record("send", response.status_code, 303, response.text)
                        except Exception as error:  # noqa: BLE001  (every failure is counted, none hidden)
                            outcomes.failed("send", error)
                        finally:
                            sessions.put(session)

                    def deliver(payload: dict, barrier: threading.Barrier) -> None:
                        body = json.dumps(payload).encode()
                        headers = {**signed_headers(webhook_secret, body, utcnow()), "user-agent": WEBHOOK_USER_AGENT}
                        try:
                            with requests.Session() as vambe:
                                barrier.wait()
                                response = vambe.post(
                                    server.url("/webhooks/vambe"), data=body, headers=headers, timeout=HTTP_TIMEOUT
                                )
                            # A 200 whose processing failed counts as an error too.
                            processed = response.status_code == 200 and response.json().get("state") == "processed"
                            outcomes.record("webhook", response.status_code, 200, response.text, accepted=processed)
                        except Exception as error:  # noqa: BLE001
                            outcomes.failed("webhook", error)

                    # Groups of calls; a group's members are queued together and meet at a barrier.
                    groups = []
                    send_bodies = []
                    for i in range(DISTINCT_SENDS):
                        body = f"mw distinct {i} {uuid.uuid4().hex[:8]}"
                        send_bodies.append(body)
                        groups.append([(send, (open_ids[i % len(open_ids)], uuid.uuid4().hex, body, None))])
                    for i in range(STORMS):
                        body = f"mw storm {i} {uuid.uuid4().hex[:8]}"
                        send_bodies.append(body)
                        key, barrier = uuid.uuid4().hex, threading.Barrier(STORM_SIZE, timeout=BARRIER_TIMEOUT)
                        groups.append([(send, (open_ids[i % len(open_ids)], key, body, barrier))] * STORM_SIZE)
                    webhook_ids = [f"wamid.mw-{i}-{uuid.uuid4().hex}" for i in range(WEBHOOK_IDS)]
                    for i, message_id in enumerate(webhook_ids):
                        payload = shape_a_received(
                            contact_ids[i % len(contact_ids)], message_id, f"mw inbound {i}", utcnow()
                        )
                        barrier = threading.Barrier(WEBHOOK_COPIES, timeout=BARRIER_TIMEOUT)
                        groups.append([(deliver, (payload, barrier))] * WEBHOOK_COPIES)
                    rng.shuffle(groups)

                    started = time.monotonic()
                    with ThreadPoolExecutor(max_workers=CLIENT_THREADS, thread_name_prefix="burst") as pool:
                        futures = [pool.submit(call, *args) for group in groups for call, args in group]
                        done, pending = wait(futures, timeout=BATCH_WITHIN_SECONDS)
                        for future in pending:
                            future.cancel()
                    burst_seconds = time.monotonic() - started
                    assert not pending, f"{len(pending)} calls did not finish within {BATCH_WITHIN_SECONDS:g} s"
                    for future in done:
                        future.result()  # the calls record their own failures; this re-raises only test bugs

                    # Every page still renders, for a signed-in agent.
                    checker = all_sessions[0]
                    pages = {"/": checker.get(server.url("/"), timeout=HTTP_TIMEOUT).status_code}
                    for conversation in conversations:
                        path = f"/conversations/{conversation.id}"
                        pages[path] = checker.get(server.url(path), timeout=HTTP_TIMEOUT).status_code
                finally:
                    for session in all_sessions:
                        session.close()

                with engine.connect() as connection:
                    agent_rows = connection.execute(
                        text("SELECT body, idempotency_key, outcome FROM messages WHERE author = 'agent'")
                    ).all()
                    inbound_rows = connection.execute(
                        text("SELECT provider_message_id FROM messages WHERE provider_message_id LIKE 'wamid.mw-%'")
                    ).all()
                    deliveries = connection.execute(text("SELECT body, state, headers FROM webhook_deliveries")).all()
                    left_sending = connection.execute(
                        text("SELECT count(*) FROM messages WHERE outcome = 'sending'")
                    ).scalar()

            stopped = server.stop()
            log = server.log()

    ours = [d for d in deliveries if d.headers.get("user-agent") == WEBHOOK_USER_AGENT]
    by_body = Counter(row.body for row in agent_rows)
    fired = outcomes.fired
    stored = len(agent_rows) + len(inbound_rows) + len(ours)
    errors = len(outcomes.errors)
    summary = (
        f"multi-worker: fired={fired} (sends={DISTINCT_SENDS + STORMS * STORM_SIZE}, "
        f"webhooks={WEBHOOK_IDS * WEBHOOK_COPIES}) stored={stored} (agent_messages={len(agent_rows)}, "
        f"inbound_messages={len(inbound_rows)}, deliveries={len(ours)}) errors={errors} "
        f"5xx={outcomes.server_errors} left_sending={left_sending} in {burst_seconds:.1f}s"
    )
    print(summary)
    record_property("multiworker", summary)
    # Shown on the terminal even when pytest captures output (no -s needed), pass or fail.
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write("\n")
            reporter.write_line(summary)
    detail = f"{summary}\nstatuses: {dict(outcomes.statuses)}\nfirst errors: {outcomes.errors[:5]}"

    # Every check is evaluated, and all that fail are reported together.
    expected_deliveries = {message_id: WEBHOOK_COPIES for message_id in webhook_ids}
    checks = {
        "every call was fired": fired == DISTINCT_SENDS + STORMS * STORM_SIZE + WEBHOOK_IDS * WEBHOOK_COPIES,
        "no HTTP 5xx": outcomes.server_errors == 0,
        "every send answered 303 and every webhook 200/processed": not outcomes.errors,
        "one agent message per idempotency key": len(agent_rows) == DISTINCT_SENDS + STORMS
        and len({row.idempotency_key for row in agent_rows}) == len(agent_rows),
        "each body stored exactly once": all(by_body[body] == 1 for body in send_bodies),
        "no message left sending": left_sending == 0,
        "every agent message sent": {row.outcome for row in agent_rows} == {"sent"},
        "one message per webhook id": sorted(row.provider_message_id for row in inbound_rows) == sorted(webhook_ids),
        "every delivery stored and processed": len(ours) == WEBHOOK_IDS * WEBHOOK_COPIES
        and {d.state for d in ours} == {"processed"}
        and Counter(json.loads(d.body)["data"]["message_id"] for d in ours) == expected_deliveries,
        # The sandbox's own "message.sent" webhooks (one per send) take the same path.
        "the sandbox's deliveries processed too": {d.state for d in deliveries} == {"processed"},
        "the inbox and every conversation render": set(pages.values()) == {200},
        "gunicorn stopped cleanly": stopped == 0,
        "no traceback in the server log": "Traceback" not in log,
    }
    failed = [name for name, passed in checks.items() if not passed]
    tracebacks = sorted(set(re.findall(r"^[\w.]+(?:Error|Exception): [^\n]{0,160}", log, re.M)))
    assert not failed, (
        f"{detail}\nfailed checks: {failed}\npages: {pages}\n"
        f"outcomes: {Counter(r.outcome for r in agent_rows)}\nexceptions in the log: {tracebacks[:8]}"
    )

"""Command-line entry points: thin wrappers over domain functions."""

import sys
import time
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from flask_migrate import upgrade
from werkzeug.serving import run_simple

from app import vambe_client
from app.clock import utcnow
from app.domain.accounts import AccountError, create_user, find_user
from app.domain.deliveries import replay_deliveries
from app.domain.ingesting import parse_time
from app.domain.jobs import single_runner
from app.domain.polling import poll_waiting_contacts
from app.domain.reconciling import JOB as RECONCILE_JOB
from app.domain.reconciling import run_reconciliation, settings_from
from app.domain.sending import settle_stuck_sends
from app.domain.syncing import SyncReport, contacts_to_sync, sync_business_numbers, sync_contact
from app.domain.templates import TemplateRefused, export_templates, import_templates
from app.extensions import db
from app.models import Role
from app.sandbox.customers import UnknownSandboxPhone, customer_says
from app.sandbox.seeding import seed_sandbox
from app.vambe import VambeError

users_cli = AppGroup("users", help="Manage the people who sign in.")
sandbox_cli = AppGroup("sandbox", help="The built-in fake of Vambe (only without VAMBE_API_KEY).")
vambe_cli = AppGroup("vambe", help="The connection to Vambe.")
webhooks_cli = AppGroup("webhooks", help="Stored webhook deliveries.")
sends_cli = AppGroup("sends", help="Outgoing messages.")
handoffs_cli = AppGroup("handoffs", help="The queue of customers waiting for a human.")
templates_cli = AppGroup("templates", help="The account's approved WhatsApp templates.")

DEMO_USERS = [
    ("agent@handoff.test", "Alex Agent", Role.AGENT),
    ("lead@handoff.test", "Lee Lead", Role.LEAD),
    ("admin@handoff.test", "Ada Admin", Role.ADMIN),
]
DEMO_PASSWORD = "handoff-demo"  # noqa: S105  (sandbox only; printed on purpose)


@users_cli.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.AGENT.value, show_default=True)
@click.option("--name", default="", help="Name shown to other agents (default: the email's local part).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input instead of prompting.")
def create_user_command(email: str, role: str, name: str, password_stdin: bool) -> None:
    """Create a user who can sign in."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = create_user(email, password, Role(role), name=name, now=utcnow())
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Created {user.role} {user.email}.")


@sandbox_cli.command("seed")
@click.option("--reset", is_flag=True, help="Wipe the sandbox and all conversations first, for fresh 24h windows.")
def seed_command(reset: bool) -> None:
    """Create demo contacts in every window state (open, closing, closed, never wrote)."""
    require_sandbox()
    if seed_sandbox(vambe_client(), now=utcnow(), reset=reset):
        click.echo("Seeded the sandbox with demo conversations.")
    else:
        click.echo("The sandbox already has data; use --reset to start again.")


@vambe_cli.command("numbers")
def numbers_command() -> None:
    """Fetch the account's WhatsApp business numbers from Vambe."""
    try:
        numbers = sync_business_numbers(vambe_client())
    except VambeError as error:
        raise click.ClickException(error.agent_message) from None
    for number in numbers:
        click.echo(f"{number.label}")


@vambe_cli.command("sync")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 365), help="How far back to go.")
@click.option("--contact", "contact_id", default=None, help="Only this Vambe contact id.")
def sync_command(days: int, contact_id: str | None) -> None:
    """Bring in message history from Vambe; running it again adds nothing twice."""
    client = vambe_client()
    now = utcnow()
    try:
        contacts = contacts_to_sync(client, days=days, contact_id=contact_id)
    except VambeError as error:
        raise click.ClickException(error.agent_message) from None
    report = SyncReport()
    with click.progressbar(contacts, label=f"Syncing {len(contacts)} contacts", show_pos=True) as bar:
        for contact in bar:
            try:
                sync_contact(client, contact, since=now - timedelta(days=days), now=now, report=report)
            except VambeError as error:
                raise click.ClickException(error.agent_message) from None
    click.echo(
        f"{report.contacts} contacts: {report.added} messages added, {report.merged} merged with webhook copies, "
        f"{report.already_known} already known."
    )
    if report.waited_seconds:
        click.echo(f"Waited {report.waited_seconds:g} s because Vambe asked to slow down.")
    for reason, count in report.skipped.most_common():
        click.echo(f"Skipped {count}: {reason}")


@webhooks_cli.command("replay")
@click.option("--failed", "only_failed", is_flag=True, help="Only deliveries whose processing failed.")
@click.option("--since", default=None, help="Only deliveries received at or after this ISO 8601 time (UTC if no zone).")
def replay_command(only_failed: bool, since: str | None) -> None:
    """Process stored webhook deliveries again; replaying is idempotent."""
    since_time = parse_time(since) if since else None
    if since and since_time is None:
        raise click.BadParameter(f"{since!r} is not an ISO 8601 time", param_hint="--since")
    deliveries = replay_deliveries(only_failed=only_failed, since=since_time, now=utcnow())
    failed = [d for d in deliveries if d.state == "failed"]
    click.echo(
        f"Replayed {len(deliveries)} deliveries: {len(deliveries) - len(failed)} processed, {len(failed)} failed."
    )
    for delivery in failed:
        click.echo(f"  #{delivery.id} ({delivery.received_at:%Y-%m-%d %H:%M:%S}): {delivery.error}")


@sends_cli.command("sweep")
def sweep_command() -> None:
    """Settle messages stuck in "sending" (a worker died mid-send) as "delivery unknown"; run from cron."""
    settled = settle_stuck_sends(now=utcnow(), older_than=current_app.config["STUCK_SEND_AGE"])
    click.echo(f"Settled {settled} stuck sends.")


@handoffs_cli.command("poll")
@click.option("--loop", is_flag=True, help="Keep polling (for a container); otherwise poll once (for cron).")
@click.option("--every", default=60, show_default=True, type=click.IntRange(1, 3600), help="Seconds between polls.")
def poll_command(loop: bool, every: int) -> None:
    """Queue the contacts Vambe lists as waiting for a human, and conversations whose window is closing
    unanswered. Runs once at a time across every worker and instance; a second poller skips its turn."""
    run_on_schedule("handoff-poll", report_poll, loop=loop, every=every, busy="Another poller is running")


@click.command("reconcile")
@with_appcontext
@click.option("--loop", is_flag=True, help="Keep reconciling (for a container); otherwise run once (for cron).")
@click.option("--every", default=60, show_default=True, type=click.IntRange(1, 3600), help="Seconds between passes.")
def reconcile_command(loop: bool, every: int) -> None:
    """Read Vambe's history of contacts with recent sends (and of contacts that wrote after what Handoff holds):
    move each message's state forward, settle sends of unknown fate, add what the webhooks missed. Runs once at a
    time across every worker and instance; a second runner skips its turn."""
    run_on_schedule(RECONCILE_JOB, report_reconciliation, loop=loop, every=every, busy="Another reconciliation runs")


def run_on_schedule(job: str, run_once, *, loop: bool, every: int, busy: str) -> None:
    """``run_once`` now (for cron), or every ``every`` seconds (for a container): one runner at a time."""
    while True:
        with single_runner(job) as mine:
            if mine:
                try:
                    run_once()
                except click.ClickException as error:
                    if not loop:
                        raise
                    click.echo(f"Error: {error.format_message()}", err=True)  # the next turn may succeed
            else:
                click.echo(f"{busy}; skipped this turn.")
        if not loop:
            return
        time.sleep(every)


def report_reconciliation() -> None:
    try:
        report = run_reconciliation(
            vambe_client(), now=utcnow(), clock=utcnow, wait=time.sleep, **settings_from(current_app.config)
        )
    except VambeError as error:
        raise click.ClickException(f"Reconciling with Vambe failed: {error.agent_message}") from None
    click.echo(
        f"{report.contacts} contacts read: {report.advanced} messages moved forward, {report.late_failures} failed "
        f"after Vambe accepted them, {report.unknown_settled} sends of unknown fate settled, {report.missed} "
        "messages the webhooks missed."
    )
    if report.waited_seconds:
        click.echo(f"Waited {report.waited_seconds:g} s because Vambe asked to slow down.")
    for reason, count in report.skipped.most_common():
        click.echo(f"Skipped {count}: {reason}")


def report_poll() -> None:
    try:
        report = poll_waiting_contacts(
            vambe_client(), now=utcnow(), warning=current_app.config["WINDOW_WARNING"], wait=time.sleep
        )
    except VambeError as error:
        db.session.rollback()
        raise click.ClickException(f"Polling Vambe failed: {error.agent_message}") from None
    click.echo(
        f"{report.contacts} contacts waiting in Vambe ({report.pages} pages): {report.queued} newly queued; "
        f"{report.closing} queued because their window is closing unanswered."
    )
    if report.waited_seconds:
        click.echo(f"Waited {report.waited_seconds:g} s because Vambe asked to slow down.")
    for reason, count in report.skipped.most_common():
        click.echo(f"Skipped {count}: {reason}")


@templates_cli.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
def import_templates_command(file) -> None:
    """Register the templates of a JSON list (id, name, language, body; optionally business_number, category,
    header, footer, active). All or nothing; importing the same file again changes nothing."""
    try:
        added, changed = import_templates(file.read(), now=utcnow())
    except TemplateRefused as refusal:
        raise click.ClickException(f"Nothing imported. {refusal}") from None
    click.echo(f"{added} templates added, {changed} changed.")


@templates_cli.command("export")
def export_templates_command() -> None:
    """Print every registered template as the JSON list `flask templates import` reads."""
    click.echo(export_templates(), nl=False)


@sandbox_cli.command("customer-says")
@click.argument("phone")
@click.argument("text")
@click.option("--name", default="", help="The customer's name, when the phone is new to the sandbox.")
@click.option("--ai-ignores-pause", is_flag=True, help="The sandbox AI answers even if a person paused it.")
def customer_says_command(phone: str, text: str, name: str, ai_ignores_pause: bool) -> None:
    """Write TEXT to the business as the WhatsApp customer PHONE (through the real webhook path)."""
    require_sandbox()
    try:
        customer_says(phone, text, name=name, now=utcnow(), ai_ignores_pause=ai_ignores_pause)
    except UnknownSandboxPhone as error:
        raise click.ClickException(str(error)) from None
    click.echo("Delivered.")


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def demo_command(host: str, port: int) -> None:
    """Set up the database, seed the sandbox, create demo logins and serve the app."""
    require_sandbox()
    upgrade(directory=current_app.extensions["migrate"].directory)
    seed_sandbox(vambe_client(), now=utcnow())
    for email, name, role in DEMO_USERS:
        if find_user(email) is None:
            create_user(email, DEMO_PASSWORD, role, name=name, now=utcnow())
    url = f"http://{host}:{port}/"
    click.echo(
        f"\n  Handoff (sandbox) is running at {url}\n"
        f"  Sign in as {DEMO_USERS[0][0]} (or {DEMO_USERS[1][0]}, {DEMO_USERS[2][0]}) "
        f"with the password {DEMO_PASSWORD}\n"
        "  Windows drifted since the last run? Stop, run `.venv/bin/flask sandbox seed --reset`, start again.\n"
    )
    # Flask refuses app.run() inside its CLI; this is the same development server.
    run_simple(host, port, current_app._get_current_object(), threaded=True)


def require_sandbox() -> None:
    if not current_app.config["SANDBOX_MODE"]:
        raise click.ClickException("This command only works in sandbox mode (VAMBE_API_KEY unset).")


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(sandbox_cli)
    app.cli.add_command(vambe_cli)
    app.cli.add_command(webhooks_cli)
    app.cli.add_command(sends_cli)
    app.cli.add_command(handoffs_cli)
    app.cli.add_command(templates_cli)
    app.cli.add_command(demo_command)
    app.cli.add_command(reconcile_command)

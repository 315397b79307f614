"""Configuration, read from the environment in one place.

No other module reads ``os.environ``: the factory calls :func:`load_config` and
everything else reads ``app.config``.
"""

import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

DEFAULT_VAMBE_API_BASE_URL = "https://api.vambe.me"
# The sandbox lives in-process; this host is never resolved (see app/sandbox/transport.py).
SANDBOX_API_BASE_URL = "https://sandbox.vambe.invalid"
SANDBOX_API_KEY = "sandbox-api-key"
SANDBOX_WEBHOOK_SECRET = "sandbox-webhook-secret"  # noqa: S105  (the sandbox's own, public on purpose)


class ConfigError(RuntimeError):
    """The environment does not describe a runnable installation."""


def read_environment(project_root: Path) -> dict[str, str]:
    """The process environment over the values of a ``.env`` file, as the ``flask`` CLI does."""
    values = {k: v for k, v in dotenv_values(project_root / ".env").items() if v is not None}
    values.update(os.environ)
    return values


MIN_SECRET_KEY_LENGTH = 32
# A random key of 32 characters has well over 10 different ones; "aaaa…" or a repeated word does not.
MIN_SECRET_KEY_DISTINCT_CHARACTERS = 10
# The secret may travel in the webhook URL, where it is all that stands between the internet and the inbox.
MIN_WEBHOOK_SECRET_LENGTH = 16
PLACEHOLDER_SECRETS = {"change-me", "changeme", "secret", "dev", "development", "replace-me", "your-secret-key"}


def load_config(env: Mapping[str, str], instance_path: Path) -> dict:
    """Build the Flask config mapping from ``env``; raise ConfigError when it cannot run."""
    api_key = env.get("VAMBE_API_KEY", "").strip()
    sandbox = not api_key
    if sandbox and not flag(env, "HANDOFF_SANDBOX", True):
        raise ConfigError("HANDOFF_SANDBOX is off, so VAMBE_API_KEY must be set to reach the real Vambe.")
    log_format = env.get("HANDOFF_LOG_FORMAT", "text")
    if log_format not in ("text", "json"):
        raise ConfigError(f"HANDOFF_LOG_FORMAT must be text or json, got {log_format!r}.")
    return {
        "SQLALCHEMY_DATABASE_URI": database_url(env.get("DATABASE_URL"), instance_path),
        "SECRET_KEY": secret_key(env.get("SECRET_KEY"), sandbox, instance_path),
        "SANDBOX_MODE": sandbox,
        "VAMBE_API_BASE_URL": SANDBOX_API_BASE_URL
        if sandbox
        else env.get("VAMBE_API_BASE_URL", DEFAULT_VAMBE_API_BASE_URL).rstrip("/"),
        "VAMBE_API_KEY": SANDBOX_API_KEY if sandbox else api_key,
        "VAMBE_WEBHOOK_SECRET": webhook_secret(env.get("VAMBE_WEBHOOK_SECRET"), sandbox),
        "VAMBE_TIMEOUT": (
            positive_float(env, "VAMBE_CONNECT_TIMEOUT_SECONDS", 3.05),
            positive_float(env, "VAMBE_READ_TIMEOUT_SECONDS", 10.0),
        ),
        "VAMBE_TOTAL_TIMEOUT": positive_float(env, "VAMBE_TOTAL_TIMEOUT_SECONDS", 15.0),
        "WINDOW_WARNING": timedelta(minutes=positive_float(env, "HANDOFF_WINDOW_WARNING_MINUTES", 60)),
        # Replying to an unassigned conversation assigns it to the replier, as agents expect from other consoles.
        "ASSIGN_ON_REPLY": flag(env, "HANDOFF_ASSIGN_ON_REPLY", True),
        "STUCK_SEND_AGE": timedelta(minutes=positive_float(env, "HANDOFF_STUCK_SEND_MINUTES", 2)),
        # Reconciliation reads the history this far back, and gives a webhook this long to arrive before it
        # calls a message missed (the sandbox's webhooks arrive before its API answers).
        "RECONCILE_LOOKBACK": timedelta(hours=positive_float(env, "HANDOFF_RECONCILE_LOOKBACK_HOURS", 48)),
        "RECONCILE_SETTLE": timedelta(
            seconds=whole_number(env, "HANDOFF_RECONCILE_SETTLE_SECONDS", 0 if sandbox else 120)
        ),
        "TRUSTED_PROXIES": whole_number(env, "HANDOFF_TRUSTED_PROXIES", 0),
        # For a user who chose none: the language when the browser asks for none Handoff speaks, and the time
        # zone (unset: the browser's).
        "DEFAULT_LOCALE": default_locale(env.get("HANDOFF_DEFAULT_LOCALE", "").strip() or "en"),
        "DEFAULT_TIMEZONE": default_time_zone(env.get("HANDOFF_DEFAULT_TIMEZONE", "").strip()),
        "LOG_FORMAT": log_format,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # A real installation is served over TLS; the sandbox demo runs on plain http://127.0.0.1.
        "SESSION_COOKIE_SECURE": flag(env, "HANDOFF_SECURE_COOKIES", not sandbox),
        # A CSRF token lives as long as the session: agents keep a console open all day.
        "WTF_CSRF_TIME_LIMIT": None,
        # No form of the console comes near these: a larger body or field is refused (413), never stored.
        "MAX_CONTENT_LENGTH": whole_number(env, "HANDOFF_MAX_REQUEST_BYTES", 1024 * 1024),
        "MAX_FORM_MEMORY_SIZE": whole_number(env, "HANDOFF_MAX_FIELD_BYTES", 64 * 1024),
        # A connection the database dropped (a restart, a proxy's idle timeout) is replaced, not handed out.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
    }


LOCALES = ("en", "es", "pt_BR")


def default_locale(raw: str) -> str:
    locale = raw.replace("-", "_")
    match = next((known for known in LOCALES if known.lower() == locale.lower()), None)
    if match is None:
        raise ConfigError(f"HANDOFF_DEFAULT_LOCALE must be one of {', '.join(LOCALES)}, got {raw!r}.")
    return match


def default_time_zone(raw: str) -> str | None:
    if not raw:
        return None
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"HANDOFF_DEFAULT_TIMEZONE must be an IANA time zone such as America/Santiago, got {raw!r}."
        ) from None
    return raw


def database_url(raw: str | None, instance_path: Path) -> str:
    """The SQLAlchemy URL; PostgreSQL URLs are pointed at the psycopg 3 driver."""
    if not raw:
        instance_path.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{instance_path / 'handoff.sqlite'}"
    for prefix in ("postgres://", "postgresql://"):
        if raw.startswith(prefix):
            return "postgresql+psycopg://" + raw[len(prefix) :]
    return raw


def secret_key(raw: str | None, sandbox: bool, instance_path: Path) -> str:
    """The session-signing key; sandbox installs get a generated one kept in the instance folder."""
    if raw and not sandbox and weak_secret_key(raw):
        raise ConfigError(
            f"SECRET_KEY is too weak for a real installation: use at least {MIN_SECRET_KEY_LENGTH} random "
            "characters, e.g. python -c 'import secrets; print(secrets.token_hex(32))'."
        )
    if raw:
        return raw
    if not sandbox:
        raise ConfigError(
            "SECRET_KEY is not set. A Vambe API key is configured, so this is a real installation: "
            "set SECRET_KEY to a long random value, e.g. "
            "python -c 'import secrets; print(secrets.token_hex(32))'."
        )
    # Kept on disk, not in memory, so that every worker signs sessions with the same key.
    key_file = instance_path / "sandbox-secret-key"
    if not key_file.exists():
        instance_path.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_hex(32))
    return key_file.read_text().strip()


def weak_secret_key(raw: str) -> bool:
    return (
        len(raw) < MIN_SECRET_KEY_LENGTH
        or raw.lower() in PLACEHOLDER_SECRETS
        or len(set(raw.strip())) < MIN_SECRET_KEY_DISTINCT_CHARACTERS
    )


def webhook_secret(raw: str | None, sandbox: bool) -> str | None:
    """The secret that authenticates Vambe's deliveries; None refuses every delivery."""
    if not raw:
        return SANDBOX_WEBHOOK_SECRET if sandbox else None
    if not sandbox and len(raw) < MIN_WEBHOOK_SECRET_LENGTH:
        raise ConfigError(
            f"VAMBE_WEBHOOK_SECRET is too short to guard the webhook: use at least {MIN_WEBHOOK_SECRET_LENGTH} "
            "random characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(24))'."
        )
    return raw


def positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    """A positive number from ``env[name]``, or ``default`` when unset."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}.") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}.")
    return value


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A yes/no setting: 1/true/yes/on or 0/false/no/off."""
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be on or off, got {raw!r}.")


def whole_number(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigError(f"{name} must be a whole number, got {raw!r}.")
    return int(raw)

from app import create_app
from app.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    # An operator needs the one line that says what to set, not a stack trace.
    raise SystemExit(f"Handoff cannot start: {error}") from None

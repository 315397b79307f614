from datetime import timedelta

import pytest

from app import create_app
from app.config import SANDBOX_API_BASE_URL, ConfigError, load_config, read_environment

STRONG_KEY = "7f3a9c1e5b2d8f4a6c0e9b3d7a1f5c8e2b6d0a4f"


def test_no_api_key_means_sandbox_mode(tmp_path):
    config = load_config({"SECRET_KEY": "s"}, tmp_path)
    assert config["SANDBOX_MODE"] is True
    assert config["VAMBE_API_BASE_URL"] == SANDBOX_API_BASE_URL


def test_an_api_key_means_a_real_vambe_account(tmp_path):
    config = load_config({"SECRET_KEY": STRONG_KEY, "VAMBE_API_KEY": "k"}, tmp_path)
    assert config["SANDBOX_MODE"] is False
    assert config["VAMBE_API_BASE_URL"] == "https://api.vambe.me"
    assert config["VAMBE_API_KEY"] == "k"


def test_base_url_override_loses_its_trailing_slash(tmp_path):
    config = load_config(
        {"SECRET_KEY": STRONG_KEY, "VAMBE_API_KEY": "k", "VAMBE_API_BASE_URL": "http://127.0.0.1:9/"}, tmp_path
    )
    assert config["VAMBE_API_BASE_URL"] == "http://127.0.0.1:9"


def test_a_real_installation_refuses_to_start_without_a_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        load_config({"VAMBE_API_KEY": "k"}, tmp_path)


def test_sandbox_generates_one_secret_key_and_keeps_it(tmp_path):
    first = load_config({}, tmp_path)["SECRET_KEY"]
    assert len(first) >= 32
    assert load_config({}, tmp_path)["SECRET_KEY"] == first


def test_database_url_defaults_to_sqlite_in_the_instance_folder(tmp_path):
    assert load_config({}, tmp_path)["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'handoff.sqlite'}"


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgres_urls_use_psycopg_3(tmp_path, scheme):
    config = load_config({"DATABASE_URL": f"{scheme}://u:p@db/handoff"}, tmp_path)
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@db/handoff"


def test_window_warning_and_timeouts_are_read_and_validated(tmp_path):
    config = load_config({"HANDOFF_WINDOW_WARNING_MINUTES": "90", "VAMBE_READ_TIMEOUT_SECONDS": "4.5"}, tmp_path)
    assert config["WINDOW_WARNING"] == timedelta(minutes=90)
    assert config["VAMBE_TIMEOUT"] == (3.05, 4.5)
    for bad in ("soon", "0", "-5"):
        with pytest.raises(ConfigError, match="HANDOFF_WINDOW_WARNING_MINUTES"):
            load_config({"HANDOFF_WINDOW_WARNING_MINUTES": bad}, tmp_path)


def test_dotenv_file_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("HANDOFF_WINDOW_WARNING_MINUTES=15\nVAMBE_WEBHOOK_SECRET=from-file\n")
    monkeypatch.setenv("VAMBE_WEBHOOK_SECRET", "from-environment")
    env = read_environment(tmp_path)
    assert env["HANDOFF_WINDOW_WARNING_MINUTES"] == "15"
    assert env["VAMBE_WEBHOOK_SECRET"] == "from-environment"


def test_factory_overrides_win_over_the_environment(tmp_path):
    app = create_app(
        {"WINDOW_WARNING": timedelta(minutes=5)},
        environ={"SECRET_KEY": "s", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"},
    )
    assert app.config["WINDOW_WARNING"] == timedelta(minutes=5)
    assert "sandbox" in app.blueprints


@pytest.mark.parametrize(
    "weak", ["change-me", "short-but-not-empty", "SECRET", " " * 40, "changeme" * 5, "ab" * 20], ids=repr
)
def test_a_real_installation_refuses_a_weak_secret_key(tmp_path, weak):
    with pytest.raises(ConfigError, match="too weak"):
        load_config({"VAMBE_API_KEY": "k", "SECRET_KEY": weak}, tmp_path)


def test_the_sandbox_can_be_turned_off_and_then_needs_a_key(tmp_path):
    with pytest.raises(ConfigError, match="VAMBE_API_KEY must be set"):
        load_config({"HANDOFF_SANDBOX": "off"}, tmp_path)
    assert (
        load_config({"HANDOFF_SANDBOX": "off", "VAMBE_API_KEY": "k", "SECRET_KEY": STRONG_KEY}, tmp_path)[
            "SANDBOX_MODE"
        ]
        is False
    )


def test_secure_cookies_default_on_for_real_installations_only(tmp_path):
    assert load_config({}, tmp_path)["SESSION_COOKIE_SECURE"] is False
    real = {"VAMBE_API_KEY": "k", "SECRET_KEY": STRONG_KEY}
    assert load_config(real, tmp_path)["SESSION_COOKIE_SECURE"] is True
    assert load_config({**real, "HANDOFF_SECURE_COOKIES": "off"}, tmp_path)["SESSION_COOKIE_SECURE"] is False
    with pytest.raises(ConfigError, match="HANDOFF_SECURE_COOKIES"):
        load_config({**real, "HANDOFF_SECURE_COOKIES": "maybe"}, tmp_path)


def test_proxy_count_and_log_format_are_validated(tmp_path):
    assert load_config({"HANDOFF_TRUSTED_PROXIES": "2"}, tmp_path)["TRUSTED_PROXIES"] == 2
    with pytest.raises(ConfigError, match="HANDOFF_TRUSTED_PROXIES"):
        load_config({"HANDOFF_TRUSTED_PROXIES": "-1"}, tmp_path)
    with pytest.raises(ConfigError, match="HANDOFF_LOG_FORMAT"):
        load_config({"HANDOFF_LOG_FORMAT": "xml"}, tmp_path)


@pytest.mark.parametrize("short", ["x", "s" * 15])
def test_a_real_installation_refuses_a_short_webhook_secret(tmp_path, short):
    with pytest.raises(ConfigError, match="VAMBE_WEBHOOK_SECRET is too short"):
        load_config({"VAMBE_API_KEY": "k", "SECRET_KEY": STRONG_KEY, "VAMBE_WEBHOOK_SECRET": short}, tmp_path)


def test_a_long_webhook_secret_or_none_is_accepted(tmp_path):
    real = {"VAMBE_API_KEY": "k", "SECRET_KEY": STRONG_KEY}
    assert load_config(real | {"VAMBE_WEBHOOK_SECRET": "s" * 16}, tmp_path)["VAMBE_WEBHOOK_SECRET"] == "s" * 16
    assert load_config(real, tmp_path)["VAMBE_WEBHOOK_SECRET"] is None  # every delivery is refused

"""Settings keep the seed's names, refuse weak secrets outside development, and start from `.env.example`."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest

from core.settings import PROJECT_ROOT, Environment, Settings, WeakSecretError, load_settings, resolve_audit_key
from tests.foundation.setting_names import every_variable_read


def test_seed_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/finance_db")
    monkeypatch.setenv("SECRET_KEY", "k" * 40)
    monkeypatch.setenv("ACCESS_TOKEN_EXPIRE_MINUTES", "30")
    monkeypatch.setenv("SMTP_HOST", "smtp.example.com")
    monkeypatch.setenv("SMTP_USER", "mailer")
    monkeypatch.setenv("SMTP_PASSWORD", "pw")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_BUCKET_NAME", "finance-backups")
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://minio:9000")
    settings = Settings()
    assert settings.db.async_url == "postgresql+psycopg://u:p@db/finance_db"
    assert settings.auth.access_token_expire_minutes == 30
    assert (settings.smtp.host, settings.smtp.user, settings.smtp.password) == ("smtp.example.com", "mailer", "pw")
    assert settings.storage.uses_s3 and settings.storage.bucket == "finance-backups"
    assert settings.storage.endpoint_url == "http://minio:9000"
    assert settings.storage.access_key_id == "AKIA"


@pytest.mark.parametrize("environment", ["production", "test"])
@pytest.mark.parametrize("key", ["", "short-secret", "x" * 31])
def test_anything_but_development_refuses_a_weak_secret(
    monkeypatch: pytest.MonkeyPatch, environment: str, key: str
) -> None:
    monkeypatch.setenv("APP_ENV", environment)
    monkeypatch.setenv("SECRET_KEY", key)
    with pytest.raises(WeakSecretError) as refused:
        Settings().check_secrets()
    message = str(refused.value)
    assert "SECRET_KEY" in message and f"APP_ENV={environment}" in message
    assert "signs every token" in message and "secrets.token_urlsafe" in message  # why, and how to fix it


def test_a_strong_secret_is_accepted_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.setenv("SECRET_KEY", "k" * 32)
    settings = Settings()
    settings.check_secrets()
    assert settings.auth.secret_key == "k" * 32


def test_development_gets_a_random_key_not_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "dev")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first, second = Settings(), Settings()
    first.check_secrets()
    second.check_secrets()
    assert len(first.auth.secret_key) >= 32 and first.auth.secret_key != second.auth.secret_key


def test_registration_is_closed_in_production_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    assert Settings().registration_open is False
    monkeypatch.setenv("APP_ENV", "dev")
    assert Settings().registration_open is True


def test_docs_are_off_in_production_unless_turned_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCS_ENABLED", raising=False)
    monkeypatch.setenv("APP_ENV", "production")
    assert Settings().serve_docs is False
    monkeypatch.setenv("DOCS_ENABLED", "true")
    assert Settings().serve_docs is True
    monkeypatch.setenv("APP_ENV", "dev")
    monkeypatch.delenv("DOCS_ENABLED")
    assert Settings().serve_docs is True
    monkeypatch.setenv("DOCS_ENABLED", "false")
    assert Settings().serve_docs is False


def test_env_example_copied_to_dot_env_starts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A new user's first step: `cp .env.example .env`. Blank values mean "the default", not a validation error."""
    for name in every_variable_read():
        monkeypatch.delenv(name, raising=False)
    shutil.copy(PROJECT_ROOT / ".env.example", tmp_path / ".env")
    monkeypatch.chdir(tmp_path)  # every settings group reads `.env` from the working directory

    settings = Settings()
    settings.check_secrets()  # APP_ENV=dev there: a throw-away key
    assert settings.environment.value == "dev"
    assert settings.auth.allow_registration is None and settings.registration_open is True
    assert settings.approvals.expiry_hours is None
    assert settings.serve_docs is True and settings.log_file == ""
    assert settings.temporal.address == "127.0.0.1:7233" and settings.temporal.worker_metrics_host == "127.0.0.1"
    assert settings.approvals.max_entry_amount == Decimal("1000000000.00")
    assert settings.backups.daily_cron == "0 2 * * *"  # a value with spaces, before an inline comment


def test_blank_values_in_the_environment_mean_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALLOW_REGISTRATION", "APPROVAL_EXPIRY_HOURS", "DOCS_ENABLED", "SMTP_PORT", "BACKUP_KEEP_DAILY"):
        monkeypatch.setenv(name, "")
    settings = Settings()
    assert settings.auth.allow_registration is None and settings.approvals.expiry_hours is None
    assert (settings.smtp.port, settings.backups.keep_daily) == (587, 7)


def test_operator_tools_may_load_settings_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """verify-audit and restore sign nothing; they still never run on an empty or short key."""
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/finance")
    monkeypatch.setenv("SECRET_KEY", "")
    with pytest.raises(WeakSecretError):
        load_settings()
    offline = load_settings(require_secret=False)
    assert len(offline.auth.secret_key) >= 32


# --- the audit chain's key ----------------------------------------------------------------------------------------


def test_the_audit_key_is_required_outside_development_and_tests(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(WeakSecretError) as refused:
        resolve_audit_key(Environment.PRODUCTION, "", tmp_path / "key")
    message = str(refused.value)
    assert "AUDIT_HMAC_KEY is not set" in message and "kept out of the database" in message
    assert not (tmp_path / "key").exists()  # no development key made behind the operator's back
    # The processes that serve users and the operator's tools alike refuse to start without it.
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/finance")
    monkeypatch.setenv("SECRET_KEY", "s" * 48)
    monkeypatch.delenv("AUDIT_HMAC_KEY", raising=False)
    for require_secret in (True, False):
        with pytest.raises(WeakSecretError, match="AUDIT_HMAC_KEY"):
            load_settings(require_secret=require_secret)
    monkeypatch.setenv("AUDIT_HMAC_KEY", "a" * 32)
    assert load_settings().audit.hmac_key == "a" * 32


@pytest.mark.parametrize("environment", ["dev", "test", "production"])
def test_a_short_audit_key_is_refused_everywhere(environment: str, tmp_path: Path) -> None:
    with pytest.raises(WeakSecretError, match="AUDIT_HMAC_KEY is only 31 bytes"):
        resolve_audit_key(Environment(environment), "x" * 31, tmp_path / "key")
    assert resolve_audit_key(Environment(environment), "x" * 32, tmp_path / "key") == b"x" * 32


def test_development_processes_share_one_random_audit_key(tmp_path: Path) -> None:
    """The API, the worker, the CLI and the tests of one checkout must agree on the key, and start together: every
    process that asks first gets the same key."""
    path = tmp_path / "var" / "audit_hmac_key"
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda env: resolve_audit_key(env, "", path), [Environment.DEV, Environment.TEST] * 8))
    assert len(keys) == 1 and len(keys.pop()) >= 32
    assert path.stat().st_mode & 0o077 == 0  # for its owner's eyes only
    assert [p.name for p in path.parent.iterdir()] == ["audit_hmac_key"]  # no candidates left behind
    assert resolve_audit_key(Environment.DEV, "", tmp_path / "elsewhere") != resolve_audit_key(
        Environment.DEV, "", path
    )

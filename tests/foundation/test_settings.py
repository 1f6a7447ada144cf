"""Settings keep the seed's names and refuse weak secrets outside development."""

from __future__ import annotations

import pytest

from core.settings import Settings, WeakSecretError


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


@pytest.mark.parametrize("key", ["", "short-secret"])
def test_production_refuses_a_weak_secret(monkeypatch: pytest.MonkeyPatch, key: str) -> None:
    monkeypatch.setenv("APP_ENV", "production")
    monkeypatch.setenv("SECRET_KEY", key)
    with pytest.raises(WeakSecretError, match="SECRET_KEY"):
        Settings().check_secrets()


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

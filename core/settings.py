"""Settings from the environment (and an optional `.env`), grouped by concern.

Each group reads its own variables, keeping the seed's flat names (`DATABASE_URL`, `SECRET_KEY`,
`SMTP_HOST`, `AWS_BUCKET_NAME`, ...) so that existing `.env` files keep working.
"""

from __future__ import annotations

import os
import secrets
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MIN_SECRET_BYTES = 32


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


def _config() -> SettingsConfigDict:
    # env_ignore_empty: `NAME=` (as in .env.example, or `NAME: ""` in compose) means "not set, use the default",
    # so an optional number or flag left blank does not fail validation.
    return SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )


class DatabasePooler(StrEnum):
    """What stands between the app and PostgreSQL at DATABASE_URL (and DATABASE_READ_URL)."""

    NONE = "none"  # PostgreSQL itself, or a pooler in session mode: a connection is a session
    TRANSACTION = "transaction"  # PgBouncer (or alike) in transaction mode: a server session per transaction only


class DatabaseSettings(BaseSettings):
    """Where the app's statements go.

    - DATABASE_URL: every transaction (the API's requests, the activities, the CLI). May be a pooler in transaction
      mode (PgBouncer `pool_mode = transaction`): then say so with DATABASE_POOLER=transaction, which turns off
      server-side prepared statements (a prepared statement lives in one server session, and the pooler hands the
      next transaction another one: 'prepared statement "_pg3_0" does not exist' / 'already exists').
    - DATABASE_DIRECT_URL: what needs a session of its own, which a transaction-mode pooler cannot give: the
      notification stream's `LISTEN` (it waits on one connection between transactions), pg_dump/pg_restore for the
      backups and drills (session `SET`s, a snapshot), and the migrations. PostgreSQL itself or a session-mode pool.
      Unset: DATABASE_URL; with DATABASE_POOLER=transaction it must be set.
    - DATABASE_READ_URL (optional): a read replica for the reads that tolerate its lag: the report activities'
      datasets and the dashboard and analytics figures (never the caller's session check, never a write: those
      transactions are READ ONLY). Unset: the primary. When it cannot be reached, reads go to the primary, with a
      warning, and the replica is tried again after DATABASE_READ_RETRY_SECONDS (core/db.py `ReadDatabase`).
    """

    model_config = _config()
    url: str = Field(default="", validation_alias="DATABASE_URL")
    pool_size: int = Field(default=10, ge=1, validation_alias="DATABASE_POOL_SIZE")
    # Connections opened beyond the pool when it is exhausted, each closed again when it is given back (a new
    # server process per use): size the pool for the steady load and keep this for bursts.
    max_overflow: int = Field(default=10, ge=0, validation_alias="DATABASE_MAX_OVERFLOW")
    echo: bool = Field(default=False, validation_alias="DATABASE_ECHO")
    pooler: DatabasePooler = Field(default=DatabasePooler.NONE, validation_alias="DATABASE_POOLER")
    # Server-side prepared statements from a statement's first use (parsed and planned once per connection: a
    # tenth less CPU per approval, docs/benchmarks.md). Unset: on, unless DATABASE_POOLER=transaction. Set it true
    # behind a pooler only when the pooler keeps protocol-level prepared statements itself (PgBouncer >= 1.21 with
    # max_prepared_statements > 0); `prepares_statements` is the one rule.
    prepared_statements: bool | None = Field(default=None, validation_alias="DATABASE_PREPARED_STATEMENTS")
    direct_url: str = Field(default="", validation_alias="DATABASE_DIRECT_URL")
    read_url: str = Field(default="", validation_alias="DATABASE_READ_URL")
    # How long a read waits to reach the replica before it goes to the primary (libpq's minimum is 2 seconds).
    read_connect_timeout_seconds: int = Field(
        default=2, ge=2, le=60, validation_alias="DATABASE_READ_CONNECT_TIMEOUT_SECONDS"
    )
    # After the replica could not be reached, reads stay on the primary this long before it is tried again.
    read_retry_seconds: float = Field(default=30.0, ge=0, le=3600, validation_alias="DATABASE_READ_RETRY_SECONDS")

    @model_validator(mode="after")
    def _refuse_listen_through_a_transaction_pooler(self) -> DatabaseSettings:
        if self.pooler == DatabasePooler.TRANSACTION and self.url and not self.direct_url:
            raise ValueError(
                "DATABASE_POOLER=transaction needs DATABASE_DIRECT_URL: the notification stream's LISTEN, the "
                "backups and the migrations need a session of their own, which a transaction-mode pooler does not "
                "keep (PostgreSQL itself, or a session-mode pool)"
            )
        return self

    @property
    def prepares_statements(self) -> bool:
        if self.prepared_statements is not None:
            return self.prepared_statements
        return self.pooler != DatabasePooler.TRANSACTION

    @property
    def async_url(self) -> str:
        """The URL with the psycopg 3 driver, whatever scheme the operator wrote."""
        return to_psycopg_url(self.url)

    @property
    def session_url(self) -> str:
        """DATABASE_DIRECT_URL, else DATABASE_URL, as the operator wrote it: for what needs a session."""
        return self.direct_url or self.url

    @property
    def session_async_url(self) -> str:
        return to_psycopg_url(self.session_url)

    def replica(self) -> DatabaseSettings | None:
        """These settings on the read replica, or None when DATABASE_READ_URL is unset."""
        if not self.read_url:
            return None
        return self.model_copy(update={"url": self.read_url, "read_url": ""})


class TemporalSettings(BaseSettings):
    model_config = _config()
    address: str = Field(default="127.0.0.1:7233", validation_alias="TEMPORAL_ADDRESS")
    namespace: str = Field(default="default", validation_alias="TEMPORAL_NAMESPACE")
    ui_url: str = Field(default="http://127.0.0.1:8233", validation_alias="TEMPORAL_UI_URL")
    task_queue_prefix: str = Field(default="finance", validation_alias="TEMPORAL_TASK_QUEUE_PREFIX")
    rpc_timeout_seconds: float = Field(default=10.0, validation_alias="TEMPORAL_RPC_TIMEOUT_SECONDS")
    worker_metrics_port: int = Field(default=9464, validation_alias="WORKER_METRICS_PORT")
    # Loopback by default (the metrics are not for the world); a container sets 0.0.0.0 so Prometheus can scrape.
    worker_metrics_host: str = Field(default="127.0.0.1", validation_alias="WORKER_METRICS_HOST")
    # The worker's business counters (decisions, SLA timers, reports, emails: domain/metrics/events.py), beside the
    # SDK's on the same host; 0 serves none. The SDK's endpoint is Temporal's own (Rust), it cannot carry ours.
    worker_business_metrics_port: int = Field(
        default=9465, ge=0, le=65535, validation_alias="WORKER_BUSINESS_METRICS_PORT"
    )
    # How many activities a process's reports Worker runs at once (renders, exports, invoice PDFs, that queue's
    # emails); the rest wait in Temporal's queue, where any reports process can take them. A render holds a database
    # connection and a thread for its whole run: at the SDK's default of 100, a storm of 50 large reports took every
    # pooled connection, renders failed waiting for one, and approvals starved for CPU (docs/benchmarks.md, issue 32).
    # Keep it under DATABASE_POOL_SIZE; add reports processes, not slots, for more throughput.
    worker_reports_activity_slots: int = Field(default=4, ge=1, le=32, validation_alias="WORKER_REPORTS_ACTIVITY_SLOTS")
    # TLS to a secured cluster or Temporal Cloud, under the names Temporal's own CLI and SDKs read. TLS is on when
    # TEMPORAL_TLS says so, or (unset) when any of the others is set; the server's certificate is then verified
    # against the CA file, else the system's trust store.
    tls: bool | None = Field(default=None, validation_alias="TEMPORAL_TLS")
    tls_server_ca_cert_path: Path | None = Field(default=None, validation_alias="TEMPORAL_TLS_SERVER_CA_CERT_PATH")
    tls_client_cert_path: Path | None = Field(default=None, validation_alias="TEMPORAL_TLS_CLIENT_CERT_PATH")
    tls_client_key_path: Path | None = Field(default=None, validation_alias="TEMPORAL_TLS_CLIENT_KEY_PATH")
    # The name the server's certificate must carry (and the SNI), when it is not the host in TEMPORAL_ADDRESS.
    tls_server_name: str = Field(default="", validation_alias="TEMPORAL_TLS_SERVER_NAME")
    api_key: str = Field(default="", validation_alias="TEMPORAL_API_KEY")
    # Worker versioning (docs/operations.md, "Rolling deploy"): off while WORKER_DEPLOYMENT_NAME is empty (dev,
    # tests, Compose). Set, every worker of one build reports the version `<name>.<build id>`: new workflows go to
    # the version the operator made current, and a pinned one stays on the version it started on. The build id is
    # WORKER_BUILD_ID (the image's tag), else a digest of the workflow code (worker.py `deployment_config`).
    worker_deployment_name: str = Field(default="", max_length=200, validation_alias="WORKER_DEPLOYMENT_NAME")
    worker_build_id: str = Field(default="", max_length=200, validation_alias="WORKER_BUILD_ID")

    @field_validator("worker_deployment_name")
    @classmethod
    def _deployment_name_without_a_dot(cls, name: str) -> str:
        if "." in name:
            raise ValueError(
                f"WORKER_DEPLOYMENT_NAME={name!r} contains a dot: Temporal writes a version as "
                "<deployment name>.<build id>, so the name cannot hold one (the build id may)"
            )
        return name

    @property
    def versions_workers(self) -> bool:
        return bool(self.worker_deployment_name)

    @property
    def uses_tls(self) -> bool:
        if self.tls is not None:
            return self.tls
        return bool(self._tls_settings_given())

    def _tls_settings_given(self) -> list[str]:
        given = {
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": self.tls_server_ca_cert_path,
            "TEMPORAL_TLS_CLIENT_CERT_PATH": self.tls_client_cert_path,
            "TEMPORAL_TLS_CLIENT_KEY_PATH": self.tls_client_key_path,
            "TEMPORAL_TLS_SERVER_NAME": self.tls_server_name,
            "TEMPORAL_API_KEY": self.api_key,
        }
        return [name for name, value in given.items() if value]

    @model_validator(mode="after")
    def _refuse_half_a_tls_configuration(self) -> TemporalSettings:
        """A configuration that would connect otherwise than the operator meant is refused here, by name, rather
        than failing (or, worse, working in clear) at the first connection."""
        if bool(self.tls_client_cert_path) != bool(self.tls_client_key_path):
            given, missing = ("CERT", "KEY") if self.tls_client_cert_path else ("KEY", "CERT")
            raise ValueError(
                f"TEMPORAL_TLS_CLIENT_{given}_PATH is set without TEMPORAL_TLS_CLIENT_{missing}_PATH: mutual TLS "
                "needs the client certificate and its private key"
            )
        if self.tls is False and self._tls_settings_given():
            raise ValueError(
                f"TEMPORAL_TLS=false, but {', '.join(self._tls_settings_given())} set: these need TLS (an API key "
                "would travel in clear). Drop TEMPORAL_TLS, or the others"
            )
        for name, path in (
            ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", self.tls_server_ca_cert_path),
            ("TEMPORAL_TLS_CLIENT_CERT_PATH", self.tls_client_cert_path),
            ("TEMPORAL_TLS_CLIENT_KEY_PATH", self.tls_client_key_path),
        ):
            if path is None:
                continue
            try:
                pem = path.read_bytes()
            except OSError as exc:
                raise ValueError(f"{name}: cannot read {path} ({exc.strerror})") from exc
            if b"-----BEGIN " not in pem:
                raise ValueError(f"{name}: {path} is not a PEM file")
        return self


class AuthSettings(BaseSettings):
    model_config = _config()
    secret_key: str = Field(default="", validation_alias="SECRET_KEY")
    access_token_expire_minutes: int = Field(default=15, ge=1, validation_alias="ACCESS_TOKEN_EXPIRE_MINUTES")
    refresh_token_expire_days: int = Field(default=14, ge=1, validation_alias="REFRESH_TOKEN_EXPIRE_DAYS")
    jwt_issuer: str = Field(default="finance-ops", validation_alias="JWT_ISSUER")
    jwt_audience: str = Field(default="finance-ops-api", validation_alias="JWT_AUDIENCE")
    bcrypt_rounds: int = Field(default=12, ge=4, le=16, validation_alias="BCRYPT_ROUNDS")
    allow_registration: bool | None = Field(default=None, validation_alias="ALLOW_REGISTRATION")
    login_rate_per_minute: int = Field(default=10, validation_alias="LOGIN_RATE_PER_MINUTE")
    otp_send_rate_per_hour: int = Field(default=5, validation_alias="OTP_SEND_RATE_PER_HOUR")
    first_superadmin_email: str = Field(default="", validation_alias="FIRST_SUPERADMIN_EMAIL")
    first_superadmin_password: str = Field(default="", validation_alias="FIRST_SUPERADMIN_PASSWORD")


class StorageSettings(BaseSettings):
    """Object storage: S3 when a bucket is named, otherwise a local folder."""

    model_config = _config()
    bucket: str = Field(default="", validation_alias=AliasChoices("S3_BUCKET", "AWS_BUCKET_NAME"))
    endpoint_url: str = Field(default="", validation_alias=AliasChoices("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL"))
    # The endpoint as the users' browsers reach it, for presigned download links (signed for that host); empty =
    # endpoint_url. Differs when the app reaches the store by an internal name (http://minio:9000 in compose).
    public_endpoint_url: str = Field(default="", validation_alias="S3_PUBLIC_ENDPOINT_URL")
    region: str = Field(default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    access_key_id: str = Field(default="", validation_alias="AWS_ACCESS_KEY_ID")
    secret_access_key: str = Field(default="", validation_alias="AWS_SECRET_ACCESS_KEY")
    server_side_encryption: str = Field(default="", validation_alias="S3_SERVER_SIDE_ENCRYPTION")
    local_dir: Path = Field(default=PROJECT_ROOT / "var" / "storage", validation_alias="STORAGE_DIR")

    @property
    def uses_s3(self) -> bool:
        return bool(self.bucket)


class SmtpTls(StrEnum):
    """How the SMTP connection is encrypted (SMTP_TLS)."""

    STARTTLS = "starttls"  # plain connect, then STARTTLS, which the server must offer (port 587)
    IMPLICIT = "implicit"  # TLS from the first byte (port 465)
    NONE = "none"  # no encryption: a local relay or Mailpit only, and never with credentials


class SmtpSettings(BaseSettings):
    """Mail: SMTP when a host is named, otherwise `.eml` files in a local folder."""

    model_config = _config()
    host: str = Field(default="", validation_alias="SMTP_HOST")
    port: int = Field(default=587, validation_alias="SMTP_PORT")
    user: str = Field(default="", validation_alias="SMTP_USER")
    password: str = Field(default="", validation_alias="SMTP_PASSWORD")
    # The seed's switch, still honoured: true is SMTP_TLS=starttls, false is SMTP_TLS=none. None: not set.
    starttls: bool | None = Field(default=None, validation_alias="SMTP_STARTTLS")
    sender: str = Field(default="finance-ops@localhost", validation_alias="SMTP_FROM")
    mail_dir: Path = Field(default=PROJECT_ROOT / "var" / "mail", validation_alias="MAIL_DIR")
    # None: from SMTP_STARTTLS if set, else implicit on port 465 and starttls on any other port.
    tls_mode: SmtpTls | None = Field(default=None, validation_alias="SMTP_TLS")
    # The server certificate is always verified: against the system's trust store, or this PEM bundle alone (a
    # private CA).
    ca_file: Path | None = Field(default=None, validation_alias="SMTP_CA_FILE")

    @property
    def uses_smtp(self) -> bool:
        return bool(self.host)

    @property
    def tls(self) -> SmtpTls:
        if self.tls_mode is not None:
            return self.tls_mode
        if self.starttls is not None:
            return SmtpTls.STARTTLS if self.starttls else SmtpTls.NONE
        return SmtpTls.IMPLICIT if self.port == 465 else SmtpTls.STARTTLS

    @model_validator(mode="after")
    def _refuse_clear_credentials(self) -> SmtpSettings:
        if not self.uses_smtp:
            return self
        if self.tls_mode is not None and self.starttls is not None:
            legacy = SmtpTls.STARTTLS if self.starttls else SmtpTls.NONE
            if legacy != self.tls_mode:
                raise ValueError(
                    f"SMTP_TLS={self.tls_mode.value} contradicts SMTP_STARTTLS={str(self.starttls).lower()} "
                    "(the older name); set SMTP_TLS only"
                )
        if self.tls == SmtpTls.NONE and self.user:
            raise ValueError(
                "SMTP_USER is set but SMTP_TLS is none (or SMTP_STARTTLS=false): the password would cross the "
                "network in clear. Use SMTP_TLS=starttls (port 587) or SMTP_TLS=implicit (port 465); none is for a "
                "local relay without credentials only"
            )
        if self.ca_file is not None:
            if self.tls == SmtpTls.NONE:
                raise ValueError("SMTP_CA_FILE is set but SMTP_TLS is none: no certificate is checked without TLS")
            if not self.ca_file.is_file():
                raise ValueError(f"SMTP_CA_FILE {self.ca_file} is not a readable file")
        return self


class ApprovalSettings(BaseSettings):
    model_config = _config()
    base_currency: str = Field(default="USD", min_length=3, max_length=3, validation_alias="BASE_CURRENCY")
    max_entry_amount: Decimal = Field(default=Decimal("1000000000.00"), validation_alias="MAX_ENTRY_AMOUNT")
    reminder_hours: float = Field(default=48, gt=0, validation_alias="APPROVAL_REMINDER_HOURS")
    escalation_hours: float = Field(default=120, gt=0, validation_alias="APPROVAL_ESCALATION_HOURS")
    expiry_hours: float | None = Field(default=None, validation_alias="APPROVAL_EXPIRY_HOURS")
    # The worker's outbox relay: how often it looks, and how long it leaves a message to the API that wrote it.
    outbox_relay_seconds: float = Field(default=5, gt=0, le=60, validation_alias="APPROVAL_OUTBOX_RELAY_SECONDS")
    outbox_grace_seconds: float = Field(default=15, ge=0, le=300, validation_alias="APPROVAL_OUTBOX_GRACE_SECONDS")
    # Past this many history events an approval workflow goes on in a new run (continue-as-new).
    history_limit: int = Field(default=10_000, ge=200, le=50_000, validation_alias="APPROVAL_HISTORY_LIMIT")
    # Delegation changes a user may make an hour (each re-routes the steps waiting on them).
    delegation_changes_per_hour: int = Field(default=20, ge=1, validation_alias="DELEGATION_CHANGES_PER_HOUR")

    @field_validator("base_currency", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        # Whether it is a currency at all is the books' check at start (domain/fx/books.py).
        return value.strip().upper() if isinstance(value, str) else value


class FxSettings(BaseSettings):
    """Exchange rates: where the ECB reference rates are fetched from and when, and how old a rate may be at submit."""

    model_config = _config()
    # The ECB's daily file (the last working day) and its 90-day file (the backfill); any URL serving that format.
    rates_url: str = Field(
        default="https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml", validation_alias="FX_RATES_URL"
    )
    history_url: str = Field(
        default="https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist-90d.xml",
        validation_alias="FX_RATES_HISTORY_URL",
    )
    # A submit refuses a rate older than this many days before the entry date (weekends and holidays have none).
    max_stale_days: int = Field(default=7, ge=1, le=60, validation_alias="FX_MAX_STALE_DAYS")
    # The ECB publishes around 16:00 CET on TARGET working days.
    cron: str = Field(default="30 16 * * 1-5", validation_alias="FX_RATES_CRON")
    timezone: str = Field(default="Europe/Berlin", validation_alias="FX_RATES_TIMEZONE")
    schedule_enabled: bool = Field(default=True, validation_alias="FX_RATES_SCHEDULE_ENABLED")
    fetch_timeout_seconds: float = Field(default=30, gt=0, le=300, validation_alias="FX_FETCH_TIMEOUT_SECONDS")
    fetch_attempts: int = Field(default=5, ge=1, le=20, validation_alias="FX_FETCH_ATTEMPTS")


class BudgetSettings(BaseSettings):
    """The budget upkeep: releases the commitments of approval workflows that closed without approval (terminated,
    failed) and emails the threshold alerts (workflows/budgets.py)."""

    model_config = _config()
    upkeep_cron: str = Field(default="*/5 * * * *", validation_alias="BUDGET_UPKEEP_CRON")
    upkeep_enabled: bool = Field(default=True, validation_alias="BUDGET_UPKEEP_ENABLED")
    # A commitment younger than this is left alone: its workflow may not have started yet (the outbox delivers it).
    upkeep_grace_seconds: int = Field(default=300, ge=0, le=86_400, validation_alias="BUDGET_UPKEEP_GRACE_SECONDS")


class DuplicateSettings(BaseSettings):
    """The possible-duplicate check at an expense's submit (domain/duplicates/check.py): it warns, never blocks."""

    model_config = _config()
    check_enabled: bool = Field(default=True, validation_alias="DUPLICATE_CHECK_ENABLED")
    # Another expense of the same owner dated this many days before or after this one counts.
    date_tolerance_days: int = Field(default=3, ge=0, le=366, validation_alias="DUPLICATE_DATE_TOLERANCE_DAYS")
    # How far back before this expense's date the check looks at all (caps the tolerance on that side).
    window_days: int = Field(default=90, ge=0, le=3660, validation_alias="DUPLICATE_WINDOW_DAYS")
    # |other's base amount - this one's| at most this percent of this expense's base amount.
    amount_tolerance_percent: Decimal = Field(
        default=Decimal("1"), ge=0, le=100, max_digits=7, decimal_places=4,
        validation_alias="DUPLICATE_AMOUNT_TOLERANCE_PERCENT",
    )  # fmt: skip
    # pg_trgm similarity of the lower-cased vendors, at or above this (0..1).
    vendor_similarity: float = Field(default=0.6, ge=0, le=1, validation_alias="DUPLICATE_VENDOR_SIMILARITY")


class ReceivablesSettings(BaseSettings):
    """Receivables figures (domain/invoices/receivables.py) on the dashboard."""

    model_config = _config()
    # Days sales outstanding = open receivables / credit sales of the last N days x N: this N.
    dso_days: int = Field(default=90, ge=7, le=365, validation_alias="RECEIVABLES_DSO_DAYS")


class AnalyticsSettings(BaseSettings):
    """The analytics' cash forecast (domain/analytics/forecast.py)."""

    model_config = _config()
    # The books record no expense payments: an expense approved in week W is taken as paid in week W + this.
    expense_payment_weeks: int = Field(default=4, ge=0, le=26, validation_alias="ANALYTICS_EXPENSE_PAYMENT_WEEKS")


class ReportSettings(BaseSettings):
    model_config = _config()
    max_period_days: int = Field(default=1830, validation_alias="REPORT_MAX_PERIOD_DAYS")
    retention_days: int = Field(default=90, validation_alias="REPORT_RETENTION_DAYS")
    attachment_limit_bytes: int = Field(default=5_000_000, validation_alias="REPORT_ATTACHMENT_LIMIT_BYTES")
    organisation_email_domains: str = Field(default="", validation_alias="ORGANISATION_EMAIL_DOMAINS")
    default_schedules: bool = Field(default=True, validation_alias="REPORT_DEFAULT_SCHEDULES")
    timezone: str = Field(default="UTC", validation_alias="REPORT_TIMEZONE")
    requests_per_hour: int = Field(default=60, ge=1, validation_alias="REPORT_REQUESTS_PER_HOUR")
    # How long a presigned download link in a report's email works: whoever holds the mail holds the file meanwhile
    # (a forwarded or leaked mail), so short; the API's download route stays behind a login.
    mail_link_hours: float = Field(default=24, gt=0, le=168, validation_alias="REPORT_MAIL_LINK_HOURS")
    # The CPU an admin's PDF layout of a report template may use (its process is stopped past it, and the report
    # fails saying so): a 5,000-row PDF of the reports' own takes ~8 s; a layout with a box per cell several times.
    layout_cpu_seconds: int = Field(default=60, ge=1, le=600, validation_alias="REPORT_LAYOUT_CPU_SECONDS")


class BackupSettings(BaseSettings):
    model_config = _config()
    daily_cron: str = Field(default="0 2 * * *", validation_alias="BACKUP_CRON")
    drill_cron: str = Field(default="0 4 * * 0", validation_alias="RESTORE_DRILL_CRON")
    timezone: str = Field(default="UTC", validation_alias="BACKUP_TIMEZONE")
    keep_daily: int = Field(default=7, ge=1, validation_alias="BACKUP_KEEP_DAILY")
    keep_monthly: int = Field(default=12, ge=0, validation_alias="BACKUP_KEEP_MONTHLY")
    prefix: str = Field(default="backups/", validation_alias="BACKUP_PREFIX")
    pg_bin_dir: str = Field(default="", validation_alias="PG_BIN_DIR")
    schedules_enabled: bool = Field(default=True, validation_alias="BACKUP_SCHEDULES_ENABLED")


class InvoiceSettings(BaseSettings):
    """What an invoice's PDF says about the seller, when and how its reminders go out (workflows/invoices.py), and
    what a payment books (domain/invoices/payments.py)."""

    model_config = _config()
    seller_name: str = Field(default="Finance Operations", max_length=200, validation_alias="INVOICE_SELLER_NAME")
    # Several lines: in `.env`, double-quote the value and write \n between lines.
    seller_address: str = Field(default="", max_length=2000, validation_alias="INVOICE_SELLER_ADDRESS")
    seller_tax_id: str = Field(default="", max_length=100, validation_alias="INVOICE_SELLER_TAX_ID")
    seller_email: str = Field(default="", max_length=254, validation_alias="INVOICE_SELLER_EMAIL")
    payment_details: str = Field(default="", max_length=2000, validation_alias="INVOICE_PAYMENT_DETAILS")
    # None: reminders.toml next to policy.csv (Settings.reminder_policy_path).
    reminder_policy: Path | None = Field(default=None, validation_alias="INVOICE_REMINDER_POLICY")
    # Reminders go out at this hour (UTC) of their day: the customer's morning, not midnight.
    reminder_hour_utc: int = Field(default=9, ge=0, le=23, validation_alias="INVOICE_REMINDER_HOUR_UTC")
    # The category of the approved revenue entry each payment books (revenue is recognized per payment: cash basis).
    revenue_category: str = Field(
        default="Invoices", min_length=1, max_length=100, validation_alias="INVOICE_REVENUE_CATEGORY"
    )

    @field_validator("revenue_category", mode="before")
    @classmethod
    def _stripped(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value


# The default grace of a pending upload beyond its link's lifetime: time for the completion call of an upload sent
# just before the link expired (a large file on a slow line), and for the upkeep to never race a client in earnest.
PENDING_GRACE_MARGIN_SECONDS = 900
# The least margin a configured grace must keep beyond the link's lifetime (AttachmentSettings.shortest_pending_grace).
PENDING_GRACE_FLOOR_MARGIN_SECONDS = 60


class AttachmentSettings(BaseSettings):
    """Receipts on expenses (domain/attachments/): how large and how many, above which amount one is required, and
    when the upkeep removes a presigned upload that was never completed."""

    model_config = _config()
    # 10 MiB by default (ERPNext's limit): a phone photo or a scanned PDF fits, a video does not.
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1, le=5 * 1024**3, validation_alias="ATTACHMENT_MAX_BYTES")
    max_per_entry: int = Field(default=10, ge=1, le=1000, validation_alias="ATTACHMENT_MAX_PER_ENTRY")
    # An expense whose base amount is above this needs a stored receipt to be submitted; None (unset): never.
    receipt_required_above: Decimal | None = Field(
        default=None, ge=0, max_digits=18, decimal_places=2, validation_alias="RECEIPT_REQUIRED_ABOVE"
    )
    # How long a presigned upload (S3) stays open, and a presigned download link works.
    upload_link_seconds: int = Field(default=900, ge=60, le=86_400, validation_alias="ATTACHMENT_UPLOAD_LINK_SECONDS")
    # The upkeep (workflows/attachments.py) removes presigned uploads never completed: rows still pending this long
    # after their start, with any object under their key. Unset: the link's lifetime plus PENDING_GRACE_MARGIN_SECONDS.
    pending_grace_seconds: int | None = Field(
        default=None, ge=1, le=30 * 86_400, validation_alias="ATTACHMENT_PENDING_GRACE_SECONDS"
    )
    upkeep_cron: str = Field(default="0 * * * *", validation_alias="ATTACHMENT_UPKEEP_CRON")
    upkeep_enabled: bool = Field(default=True, validation_alias="ATTACHMENT_UPKEEP_ENABLED")

    @property
    def shortest_pending_grace(self) -> int:
        """The least grace that never sweeps an upload whose link still works. The link is signed a moment after
        the row's clock (its transaction's start) by the API's clock, and honoured by the store's: a minute covers
        both, and an upload the store accepted just before the link expired."""
        return self.upload_link_seconds + PENDING_GRACE_FLOOR_MARGIN_SECONDS

    @property
    def grace_seconds(self) -> int:
        """How old a pending upload is when the upkeep removes it (ATTACHMENT_PENDING_GRACE_SECONDS, or its default)."""
        if self.pending_grace_seconds is not None:
            return self.pending_grace_seconds
        return self.upload_link_seconds + PENDING_GRACE_MARGIN_SECONDS

    @model_validator(mode="after")
    def _grace_outlives_the_link(self) -> AttachmentSettings:
        if self.grace_seconds < self.shortest_pending_grace:
            raise ValueError(
                f"ATTACHMENT_PENDING_GRACE_SECONDS ({self.grace_seconds}) must be at least "
                f"ATTACHMENT_UPLOAD_LINK_SECONDS ({self.upload_link_seconds}) plus "
                f"{PENDING_GRACE_FLOOR_MARGIN_SECONDS} (= {self.shortest_pending_grace}): an upload whose link still "
                "works would be swept, and the file its client then sends would belong to nothing"
            )
        return self


class ExportSettings(BaseSettings):
    """What the journal exports (domain/exports/formats/) need to know of the books they are imported into."""

    model_config = _config()
    # DATEV's header record: the tax adviser's consultant number and the client's number in DATEV. No default: a
    # wrong pair would import the month into another client; a DATEV export is refused until both are set.
    datev_consultant_number: int | None = Field(
        default=None, ge=1001, le=9_999_999, validation_alias="DATEV_CONSULTANT_NUMBER"
    )
    datev_client_number: int | None = Field(default=None, ge=1, le=99_999, validation_alias="DATEV_CLIENT_NUMBER")
    # The month the fiscal year starts in (DATEV's "WJ-Beginn" is its first day, in the year the exported month is in).
    datev_fiscal_year_start_month: int = Field(default=1, ge=1, le=12, validation_alias="DATEV_FISCAL_YEAR_START_MONTH")
    # DATEV's "Sachkontenlänge": the digits of a G/L account; a booking's accounts have at most one more digit.
    datev_account_length: int = Field(default=4, ge=4, le=8, validation_alias="DATEV_ACCOUNT_LENGTH")
    # The chart of accounts named in the header (03 = SKR03, 04 = SKR04).
    datev_chart_of_accounts: str = Field(default="03", pattern=r"^\d{2}$", validation_alias="DATEV_CHART_OF_ACCOUNTS")
    # The account a journal with several lines on both sides is booked against, line by line (nets to zero per
    # journal); empty: such a journal refuses the DATEV export, naming it.
    datev_clearing_account: str = Field(default="", pattern=r"^(\d{1,9})?$", validation_alias="DATEV_CLEARING_ACCOUNT")
    # Our tax codes to DATEV BU-Schlüssel, JSON: {"VAT19": "9"}. A key makes DATEV compute tax from the booking,
    # which the journals already hold on their own lines: map only where the adviser wants that (empty: none).
    datev_tax_keys: dict[str, str] = Field(default_factory=dict, validation_alias="DATEV_TAX_KEYS")
    # Xero's TaxRate column wants the name of a tax rate of the organisation: our tax codes to those names, JSON
    # ({"VAT19": "20% (VAT on Expenses)"}); a line without a mapped code gets XERO_NO_TAX_RATE.
    xero_tax_rates: dict[str, str] = Field(default_factory=dict, validation_alias="XERO_TAX_RATES")
    xero_no_tax_rate: str = Field(
        default="Tax Exempt", min_length=1, max_length=100, validation_alias="XERO_NO_TAX_RATE"
    )
    # The Xero tracking category a line's cost center becomes an option of (empty: cost centers are not exported).
    xero_tracking_category: str = Field(
        default="Cost Center", max_length=100, validation_alias="XERO_TRACKING_CATEGORY"
    )

    @field_validator("datev_tax_keys")
    @classmethod
    def _datev_keys(cls, value: dict[str, str]) -> dict[str, str]:
        wrong = sorted(code for code, key in value.items() if not (key.isdigit() and 1 <= len(key) <= 4))
        if wrong:
            raise ValueError(f"DATEV_TAX_KEYS: a BU-Schlüssel is 1 to 4 digits; not so for {wrong}")
        return value

    @property
    def datev_ready(self) -> bool:
        return self.datev_consultant_number is not None and self.datev_client_number is not None


class AuditSettings(BaseSettings):
    """The audit chain's key (see `audit_key`). Kept out of the database: with write access to the database alone,
    an edited row's hash cannot be recomputed."""

    model_config = _config()
    hmac_key: str = Field(default="", validation_alias="AUDIT_HMAC_KEY")


class Settings(BaseSettings):
    model_config = _config()
    environment: Environment = Field(default=Environment.DEV, validation_alias=AliasChoices("APP_ENV", "ENVIRONMENT"))
    app_name: str = Field(default="Finance Operations", validation_alias="APP_NAME")
    log_file: str = Field(default="", validation_alias="LOG_FILE")
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")
    cors_origins: str = Field(default="", validation_alias="CORS_ORIGINS")
    docs_enabled: bool | None = Field(default=None, validation_alias="DOCS_ENABLED")  # None: see serve_docs
    max_body_bytes: int = Field(default=1_000_000, validation_alias="MAX_BODY_BYTES")
    policy_dir: Path = Field(default=PROJECT_ROOT / "policies", validation_alias="POLICY_DIR")
    public_base_url: str = Field(default="http://127.0.0.1:8000", validation_alias="PUBLIC_BASE_URL")

    db: DatabaseSettings = Field(default_factory=DatabaseSettings)
    temporal: TemporalSettings = Field(default_factory=TemporalSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    fx: FxSettings = Field(default_factory=FxSettings)
    budgets: BudgetSettings = Field(default_factory=BudgetSettings)
    receivables: ReceivablesSettings = Field(default_factory=ReceivablesSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
    duplicates: DuplicateSettings = Field(default_factory=DuplicateSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    backups: BackupSettings = Field(default_factory=BackupSettings)
    invoices: InvoiceSettings = Field(default_factory=InvoiceSettings)
    attachments: AttachmentSettings = Field(default_factory=AttachmentSettings)
    exports: ExportSettings = Field(default_factory=ExportSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)

    @field_validator("environment", mode="before")
    @classmethod
    def _normalise_environment(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @property
    def reminder_policy_path(self) -> Path:
        """The invoice reminder policy: INVOICE_REMINDER_POLICY, else `reminders.toml` beside policy.csv."""
        return self.invoices.reminder_policy or self.policy_dir / "reminders.toml"

    @property
    def is_production(self) -> bool:
        return self.environment == Environment.PRODUCTION

    @property
    def registration_open(self) -> bool:
        if self.auth.allow_registration is not None:
            return self.auth.allow_registration
        return not self.is_production

    @property
    def serve_docs(self) -> bool:
        """/docs, /redoc and /openapi.json: on unless turned off, and off in production unless turned on (the
        schema maps the whole attack surface)."""
        if self.docs_enabled is not None:
            return self.docs_enabled
        return not self.is_production

    @property
    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    def check_secrets(self) -> None:
        """Refuse to run with a missing or weak SECRET_KEY anywhere but development (and say why).

        The key signs every access and refresh token and keys the hashes of emailed codes: whoever knows or
        guesses it can mint a token for any user. Only a development machine may run on a throw-away key.
        """
        key = self.auth.secret_key
        if len(key.encode()) >= MIN_SECRET_BYTES:
            return
        if self.environment != Environment.DEV:
            problem = "is not set" if not key else f"is only {len(key.encode())} bytes"
            raise WeakSecretError(
                f"SECRET_KEY {problem}; with APP_ENV={self.environment.value} it must be at least "
                f"{MIN_SECRET_BYTES} random bytes, because it signs every token (a known or short key lets anyone "
                "sign in as anyone). Only APP_ENV=dev runs on a throw-away key. Generate one with: "
                'python -c "import secrets; print(secrets.token_urlsafe(48))"'
            )
        # Development: an ephemeral key, so nothing depends on a well-known default.
        self.auth.secret_key = secrets.token_urlsafe(48)
        if self.auth.bcrypt_rounds > 12:
            self.auth.bcrypt_rounds = 12

    def check_audit_key(self) -> None:
        """Refuse to start without a usable audit key (see `resolve_audit_key`), rather than at the first audited
        action."""
        resolve_audit_key(self.environment, self.audit.hmac_key)

    def check_production(self) -> None:
        if self.is_production and self.auth.bcrypt_rounds < 12:
            raise WeakSecretError("BCRYPT_ROUNDS must be at least 12 in production")


class WeakSecretError(RuntimeError):
    pass


def to_psycopg_url(url: str) -> str:
    for prefix in ("postgresql+psycopg2://", "postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_settings(*, require_secret: bool = True) -> Settings:
    """Settings for a process. `require_secret=False` is for operator tools that never sign or check a token
    (verify-audit, restore): they need not hold the key; everything that serves users does (`get_settings`)."""
    settings = Settings()
    if require_secret:
        settings.check_secrets()
    elif len(settings.auth.secret_key.encode()) < MIN_SECRET_BYTES:
        settings.auth.secret_key = secrets.token_urlsafe(48)  # never an empty or short key, even unused
    settings.check_production()
    settings.check_audit_key()  # operator tools too: verify-audit and restore check the chain with it
    if not settings.db.url:
        raise MissingSettingError("DATABASE_URL is not set (make dev sets it to the embedded PostgreSQL)")
    return settings


class MissingSettingError(RuntimeError):
    pass


@lru_cache
def get_settings() -> Settings:
    return load_settings()


# Development and tests: one random key per checkout, shared by every process that writes or checks the chain (the
# API, the worker, the CLI, the tests), kept like make dev's secret key. `make reset` removes it with the data.
DEV_AUDIT_KEY_FILE = PROJECT_ROOT / "var" / "audit_hmac_key"


def resolve_audit_key(environment: Environment, configured: str, dev_key_file: Path = DEV_AUDIT_KEY_FILE) -> bytes:
    """The audit chain's HMAC key: AUDIT_HMAC_KEY, at least 32 bytes; outside dev and test it must be set."""
    if configured:
        if len(configured.encode()) < MIN_SECRET_BYTES:
            raise WeakSecretError(
                f"AUDIT_HMAC_KEY is only {len(configured.encode())} bytes; it must be at least {MIN_SECRET_BYTES} "
                "random bytes. Generate one with: "
                'python -c "import secrets; print(secrets.token_urlsafe(48))"'
            )
        return configured.encode()
    if environment not in (Environment.DEV, Environment.TEST):
        raise WeakSecretError(
            f"AUDIT_HMAC_KEY is not set; with APP_ENV={environment.value} it must be at least {MIN_SECRET_BYTES} "
            "random bytes, the same for the API, the worker and the operator's CLI, and kept out of the database: "
            "it keys the audit chain's hashes, so that write access to the database alone cannot re-forge them. "
            'Generate one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
        )
    return dev_audit_key(dev_key_file)


def dev_audit_key(path: Path) -> bytes:
    """The development key in `path`, made on first use. Several processes may start at once: each writes a
    candidate and links it into place, and the first link wins whole, so all of them read the same key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        with os.fdopen(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass
        finally:
            candidate.unlink()
    return path.read_text().strip().encode()


@lru_cache
def audit_key() -> bytes:
    """This process's audit key, read once from the environment (AUDIT_HMAC_KEY, APP_ENV). The audit trail takes
    it from here, not from a Settings object passed around: every writer and checker of one chain must hold the
    same key, and no caller can hand it another."""
    settings = Settings()
    return resolve_audit_key(settings.environment, settings.audit.hmac_key)

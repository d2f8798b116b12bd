"""Settings, read in one place: environment variables prefixed NETRA_ (and the provider keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob Netra has; built once, frozen, passed down."""

    model_config = SettingsConfigDict(env_prefix="NETRA_", frozen=True, extra="ignore")

    data_dir: Path = Path(".netra")
    database_url: str | None = None
    redis_url: str | None = None
    clickhouse_url: str | None = None
    clickhouse_database: str = "netra"
    config: Path | None = None
    secret_key: SecretStr | None = None

    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"

    max_body_bytes: int = 4 * 1024 * 1024
    # Files API uploads (multipart, POST /v1/files) may be this large; OpenAI accepts batch input files up to 200 MB.
    max_file_bytes: int = 200 * 1024 * 1024
    upstream_connect_timeout: float = 10.0
    upstream_first_byte_timeout: float = 300.0
    upstream_idle_timeout: float = 120.0
    upstream_total_timeout: float = 600.0
    upstream_max_connections: int = 1000
    # Attempts per model of a call (the first and its retries), retries also bounded by the retry budget.
    upstream_attempts: int = Field(default=3, ge=1)
    # Resilience (README, Routing and resilience): every attempt, fallback and backoff of one call fits the deadline;
    # retries back off exponentially with jitter from the base delay and never exceed the budget's fraction of
    # recent requests per deployment; a deployment's breaker opens after that many consecutive failures and lets one
    # probe through once the open time has passed.
    request_deadline: float = Field(default=600.0, gt=0)
    retry_base_delay: float = Field(default=0.2, ge=0)
    retry_budget: float = Field(default=0.2, ge=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_open_seconds: float = Field(default=30.0, gt=0)
    graceful_shutdown_timeout: float = 30.0
    # Client connections (gateway/protocol.py): the request line and headers at most this many bytes (431);
    # headers due within, and no pause in the body longer than, the body timeout (408); idle keep-alive
    # connections closed after the keep-alive timeout; connections above the cap refused with a 503.
    max_header_bytes: int = 64 * 1024
    client_body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    max_connections: int = 4096

    key_cache_ttl: float = 5.0
    # How often each gateway process reads the policy change counter (the fallback to, and without, Redis notices).
    policy_poll_interval: float = Field(default=1.0, gt=0)
    # The in-process response cache (used when no Redis is configured): entries evicted least recently used first
    # once their bytes pass this bound.
    cache_max_bytes: int = 256 * 1024 * 1024

    # The admin app (admin/): its port beside the gateway's, its tokens' lifetimes, and login throttling: an
    # account (or a client address) with this many failed logins in the window is refused until they age out.
    admin_port: int = 8081
    admin_access_token_ttl: int = Field(default=900, gt=0)
    admin_refresh_token_ttl: int = Field(default=7 * 24 * 3600, gt=0)
    admin_login_window: int = Field(default=900, gt=0)
    admin_login_max_failures: int = Field(default=5, gt=0)
    admin_login_max_failures_per_address: int = Field(default=20, gt=0)
    admin_password_min_length: int = Field(default=12, ge=8)
    # Argon2id cost of new password hashes (RFC 9106's second recommendation by default; a hash keeps its own).
    admin_password_hash_time_cost: int = Field(default=3, ge=1)
    admin_password_hash_memory_kib: int = Field(default=64 * 1024, ge=1024)
    # Single sign-on (docs/admin.md): on when the issuer is set, which then needs the client id and secret, the
    # admin app's external base URL (the callback is <base>/api/auth/oidc/callback) and the role map (JSON).
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_redirect_base_url: str | None = None
    oidc_role_map: str | None = None
    oidc_scopes: str = "openid email profile"

    # The deferred lane (x-netra-defer): queued requests go to a provider batch job once this many are queued for
    # one provider model or the oldest has waited the window; submitted jobs are polled at the poll interval.
    defer_max_requests: int = Field(default=10_000, gt=0)
    defer_window: float = Field(default=60.0, gt=0)
    defer_poll_interval: float = Field(default=30.0, gt=0)

    ledger_enabled: bool = True
    # "process": the data dir's one ledger process ingests the spill into ClickHouse (the embedded engine's CPU and
    # memory stay out of the gateway); "thread": this process does (tests that read the same embedded store use it).
    ledger_ingest: Literal["process", "thread"] = "process"
    ledger_segment_bytes: int = 16 * 1024 * 1024
    ledger_batch_rows: int = 10_000
    # Each insert costs ClickHouse ~30 ms of CPU whatever its size (mostly the rollup views): with a few seconds
    # of rows per batch that is a few µs per row at a few thousand calls per second (60 µs at 1 000-row batches).
    ledger_flush_interval: float = 5.0
    ledger_commit_interval: float = 0.01

    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("NETRA_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    anthropic_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("NETRA_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY")
    )

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL, SQLite in the data dir unless configured."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'netra.db').resolve()}"

    @property
    def resolved_clickhouse_url(self) -> str:
        """The ClickHouse DSN, embedded chDB in the data dir unless configured."""
        if self.clickhouse_url:
            return self.clickhouse_url
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def resolved_config_path(self) -> Path | None:
        """The YAML config file: NETRA_CONFIG, else ./netra.yaml when present."""
        if self.config is not None:
            return self.config
        default = Path("netra.yaml")
        return default if default.is_file() else None

    @property
    def spill_dir(self) -> Path:
        """Where the ledger's write-ahead segments live."""
        return self.data_dir / "spill"

"""One typed settings object for every service, read from `OTC_*` variables.

Outside development it refuses the development JWT secret, so a forgotten
variable can never ship a guessable key to production.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from otc.tuning import Tuning

DEV_JWT_SECRET = "otc-development-secret-change-me-in-production"  # noqa: S105


class Settings(Tuning, BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OTC_", frozen=True, extra="ignore")

    env: Literal["development", "test", "production"] = Field(
        default="development", description="`production` refuses the development JWT secret"
    )
    log_format: Literal["console", "json"] = Field(
        default="console",
        description="`console` for people, `json` (one object a line) for log collectors",
    )
    log_level: str = Field(
        default="INFO", description="lowest level logged: DEBUG, INFO, WARNING or ERROR"
    )

    infra: Literal["embedded", "external", "containers"] = Field(
        default="embedded",
        description="what `otc up` and the tests run on: `embedded` servers for each URL not "
        "set, only the `external` URLs, or Docker `containers` (testcontainers) for each not set",
    )
    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:pass@host/db); unset, `otc up` starts one",
    )
    postgres_durable: bool = Field(
        default=False,
        description="run the embedded PostgreSQL with fsync, synchronous_commit and "
        "full_page_writes on, as a production server does, the mode to take benchmark "
        "figures in; off by default, since `otc up` throws its data away at each start and "
        "crash durability buys nothing there. No effect on a server given by "
        "`OTC_DATABASE_URL` or started by `OTC_INFRA=containers`",
    )
    redis_url: str | None = Field(
        default=None,
        description="Redis URL (redis://host:6379/0); unset, `otc up` starts an embedded Valkey",
    )
    kafka_bootstrap: str | None = Field(
        default=None,
        description="Kafka bootstrap servers (host:port,...); unset, `otc up` starts a broker",
    )
    kafka_partitions: int = Field(
        default=2,
        ge=1,
        description="partitions of each topic `otc up` creates. Every idle consumer costs "
        "the embedded broker work for each partition it follows, and one machine runs one "
        "replica of each service, so a few are enough; Kubernetes creates its own (6, "
        "deploy/k8s/base/kafka-topics.yaml)",
    )

    http_host: str = Field(
        default="127.0.0.1", description="address the trader edge (rfq_service) listens on"
    )
    http_port: int = Field(
        default=8000,
        description="port of the trader edge: REST, WebSocket, /healthz, /readyz and /metrics",
    )
    ops_port: int = Field(
        default=0,
        description="port of /healthz, /readyz, /metrics where a service has no HTTP port (0: off)",
    )
    risk_grpc_host: str = Field(
        default="127.0.0.1", description="host its clients reach risk_limits' gRPC service at"
    )
    risk_grpc_port: int = Field(default=50051, description="port of risk_limits' gRPC service")
    risk_grpc_timeout_ms: int = Field(
        default=2000, description="deadline of each call order_core makes to risk_limits"
    )
    audit_api_url: str = Field(
        default="http://127.0.0.1:9100",
        description="order_core's audit API (served on its OTC_OPS_PORT), proxied by the edge",
    )

    jwt_secret: SecretStr = Field(
        default=SecretStr(DEV_JWT_SECRET),
        description="HS256 key that signs and verifies tokens; must be set in production",
    )
    jwt_ttl_s: int = Field(
        default=12 * 3600, description="lifetime of the development token `otc up` prints"
    )
    jwt_algorithm: Literal["HS256", "RS256"] = Field(
        default="HS256", description="token signature: HS256 (shared secret) or RS256 (public key)"
    )
    jwt_public_key_file: Path | None = Field(
        default=None, description="PEM public key that verifies RS256 tokens"
    )
    jwks_file: Path | None = Field(
        default=None, description="JWKS file of RS256 verification keys, picked by the token's kid"
    )
    jwt_private_key_file: Path | None = Field(
        default=None, description="PEM private key that `otc token` signs RS256 tokens with"
    )
    jwt_issuer: str | None = Field(default=None, description="required `iss` claim, when set")
    jwt_audience: str | None = Field(default=None, description="required `aud` claim, when set")
    rate_limit_per_s: float = Field(
        default=20.0, gt=0, description="requests per second each party may sustain on the edge"
    )
    rate_limit_burst: int = Field(
        default=40, ge=1, description="requests a party may make at once after being idle"
    )
    price_max_hz: float = Field(
        default=4.0, gt=0, description="most price messages a second per instrument on a WebSocket"
    )
    ws_max_sessions: int = Field(
        default=50,
        ge=1,
        description="WebSocket sessions one party may hold (a trader's on the edge, counting "
        "those kept for resuming; a maker's bots on the gateway); the oldest kept one makes "
        "room, else a new one is refused with close code 4429",
    )

    makers: str = Field(
        default="MM-1,MM-2,MM-3",
        description="comma-separated market makers an RFQ goes to when the trader names none",
    )
    quote_ttl_ms: int = Field(
        default=10_000, description="how long a maker's quote stays valid (its valid_until)"
    )
    last_look_window_ms: int = Field(
        default=200, gt=0, description="how long a market maker has to answer a last look"
    )
    last_look_grace_ms: int = Field(
        default=200,
        ge=0,
        description="how long after a last-look window the sweeper still waits for an answer "
        "the maker sent in time (answers count by when they were sent)",
    )
    reconcile_grace_ms: int = Field(
        default=10_000,
        ge=0,
        description="how old a pending order or frozen reservation must be before the "
        "reconciler repairs it",
    )
    audit_signing_key_file: Path | None = Field(
        default=None,
        description="Ed25519 private key (PKCS8 PEM) that signs the audit log's checkpoints; "
        "required in production, elsewhere `<state_dir>/audit-signing-key.pem`, made if missing",
    )
    audit_checkpoint_file: Path | None = Field(
        default=None,
        description="append-only copy of the signed checkpoints outside the database "
        "(`otc up` keeps one in its state dir); unset, none is written",
    )
    audit_checkpoint_every: int = Field(
        default=1000, ge=1, description="the sequencer signs a checkpoint every this many events"
    )
    audit_checkpoint_interval_ms: int = Field(
        default=1000,
        gt=0,
        description="... or this long after the last checkpoint, when events came meanwhile",
    )
    accept_reply_timeout_ms: int = Field(
        default=2_000,
        description="how long the edge waits for order_core to answer an accept before a 202",
    )
    price_tick_ms: int = Field(
        default=250, description="interval between two ticks of the simulated price feed"
    )
    reservation_ttl_ms: int = Field(
        default=30_000,
        description="how long a credit freeze may stay uncommitted before risk_limits releases it",
    )
    price_band_bps: Decimal = Field(
        default=Decimal(500),
        gt=0,
        description="fat-finger band: a quote further than this from the reference mid is refused",
    )
    max_block_notional: Decimal = Field(
        default=Decimal(25_000_000),
        gt=0,
        description="largest notional (quantity times price) a maker's quote may carry",
    )
    mmp_window_ms: int = Field(
        default=10_000, gt=0, description="market-maker protection: its rolling window"
    )
    mmp_max_accepts: int = Field(
        default=500,
        ge=1,
        description="MMP: more accepted quotes than this in the window halts the maker",
    )
    mmp_max_notional: Decimal = Field(
        default=Decimal(250_000_000),
        gt=0,
        description="MMP: more notional accepted than this in the window halts the maker",
    )
    mm_http_port: int = Field(
        default=8001, description="market-maker gateway: bots' WebSocket and the kill switch API"
    )
    mm_heartbeat_timeout_ms: int = Field(
        default=10_000,
        gt=0,
        description="a bot silent for this long is dropped and its quotes withdrawn",
    )
    mm_messages_per_s: float = Field(
        default=50.0,
        gt=0,
        description="market-maker gateway: bot messages (quote, replace, withdraw, last-look "
        "answers) a maker may send per second, sustained, over all its sockets",
    )
    mm_message_burst: int = Field(
        default=100, ge=1, description="market-maker gateway: bot messages a maker may send at once"
    )
    mm_refusals_before_close: int = Field(
        default=200,
        ge=1,
        description="market-maker gateway: rate-limited messages in a row after which the "
        "bot's socket is closed (1008)",
    )
    calendar: Literal["exchange", "always_open"] = Field(
        default="exchange",
        description="trading sessions: `exchange` (crypto 24/7, FX 24/5) or `always_open`",
    )
    settlement_max_attempts: int = Field(
        default=5, ge=1, description="attempts to settle a trade before it is announced as failed"
    )
    settlement_retry_base_ms: int = Field(
        default=500, gt=0, description="wait before a second settlement attempt; doubles each time"
    )
    settlement_retry_max_ms: int = Field(
        default=30_000, gt=0, description="longest wait between two settlement attempts"
    )

    shutdown_grace_s: float = Field(
        default=20.0,
        gt=0,
        description="on SIGTERM, how long a service may drain before it cuts work off and "
        "exits 1; keep it below the orchestrator's kill deadline",
    )
    otel_exporter: Literal["none", "console", "otlp"] = Field(
        default="none",
        description="where OpenTelemetry spans go: `none` (tracing off), `console` (stdout) "
        "or `otlp` (OTLP over HTTP)",
    )
    otel_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces URL (http://collector:4318/v1/traces); unset, the "
        "exporter's own default",
    )

    state_dir: Path = Field(
        default=Path(".otc"),
        description="folder of `otc up`'s embedded servers' data, logs and endpoints file",
    )

    @model_validator(mode="after")
    def _no_default_secret_outside_development(self) -> Settings:
        if (
            self.env == "production"
            and self.jwt_algorithm == "HS256"
            and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET
        ):
            raise ValueError("OTC_JWT_SECRET must be set outside development")
        return self

    @property
    def maker_ids(self) -> tuple[str, ...]:
        return tuple(m.strip() for m in self.makers.split(",") if m.strip())

    @property
    def risk_grpc_target(self) -> str:
        return f"{self.risk_grpc_host}:{self.risk_grpc_port}"

    def require(self, name: Literal["database_url", "redis_url", "kafka_bootstrap"]) -> str:
        value: str | None = getattr(self, name)
        if not value:
            raise RuntimeError(
                f"OTC_{name.upper()} is not set; run the platform with `otc up`, "
                "which starts embedded servers and sets it for every service"
            )
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()

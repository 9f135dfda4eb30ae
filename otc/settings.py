"""One typed settings object for every service, read from `OTC_*` variables.

Outside development it refuses the development JWT secret, so a forgotten
variable can never ship a guessable key to production.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "otc-development-secret-change-me-in-production"  # noqa: S105


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OTC_", frozen=True, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    log_format: Literal["console", "json"] = "console"
    log_level: str = "INFO"

    database_url: str | None = None
    redis_url: str | None = None
    kafka_bootstrap: str | None = None
    kafka_partitions: int = 6

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    ops_port: int = 0
    risk_grpc_host: str = "127.0.0.1"
    risk_grpc_port: int = 50051
    risk_grpc_timeout_ms: int = 2000

    jwt_secret: SecretStr = SecretStr(DEV_JWT_SECRET)
    jwt_ttl_s: int = 12 * 3600

    makers: str = "MM-1,MM-2,MM-3"
    quote_ttl_ms: int = 10_000
    last_look_window_ms: int = 3_000
    accept_reply_timeout_ms: int = 2_000
    price_tick_ms: int = 250
    reservation_ttl_ms: int = 30_000

    state_dir: Path = Path(".otc")

    @model_validator(mode="after")
    def _no_default_secret_outside_development(self) -> Settings:
        if self.env == "production" and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
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

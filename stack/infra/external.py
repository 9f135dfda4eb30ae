"""`OTC_INFRA=external`: servers someone else runs, found by their `OTC_*` URLs."""

from __future__ import annotations

from otc.settings import Settings
from stack.infra.provider import Endpoints, MissingEndpoints

VARIABLES = {
    "database_url": "OTC_DATABASE_URL",
    "redis_url": "OTC_REDIS_URL",
    "kafka_bootstrap": "OTC_KAFKA_BOOTSTRAP",
}


class ExternalInfrastructure:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def start(self) -> Endpoints:
        s = self.settings
        if not (s.database_url and s.redis_url and s.kafka_bootstrap):
            missing = [v for name, v in VARIABLES.items() if not getattr(s, name)]
            raise MissingEndpoints(f"OTC_INFRA=external needs {', '.join(missing)}")
        return Endpoints(s.database_url, s.redis_url, s.kafka_bootstrap)

    def stop(self) -> None:
        """Nothing to stop: the servers are not ours."""

    @property
    def started(self) -> list[str]:
        return []

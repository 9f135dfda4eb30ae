"""`OTC_INFRA=embedded`, the default: an embedded server for each URL not set.

PostgreSQL, Valkey and Kafka (Tansu) come from PyPI wheels and run as child
processes with their data under the platform's state directory; a URL that is
set (`OTC_DATABASE_URL`, `OTC_REDIS_URL`, `OTC_KAFKA_BOOTSTRAP`) is used as it is.
"""

from __future__ import annotations

from pathlib import Path

from otc.settings import Settings
from stack.infra.kafka import EmbeddedKafka
from stack.infra.postgres import EmbeddedPostgres
from stack.infra.provider import Endpoints
from stack.infra.valkey import EmbeddedValkey


class EmbeddedInfrastructure:
    def __init__(self, settings: Settings, state_dir: Path) -> None:
        self.settings = settings
        self.state_dir = state_dir
        self._servers: list[EmbeddedPostgres | EmbeddedValkey | EmbeddedKafka] = []

    def start(self) -> Endpoints:
        s = self.settings
        logs = self.state_dir / "logs"
        database_url, redis_url, bootstrap = s.database_url, s.redis_url, s.kafka_bootstrap
        try:
            if not database_url:
                pg = EmbeddedPostgres(
                    self.state_dir / "postgres", logs / "postgres.log", durable=s.postgres_durable
                )
                self._servers.append(pg)
                pg.start()
                database_url = pg.url
            if not redis_url:
                valkey = EmbeddedValkey(self.state_dir / "valkey", logs / "valkey.log")
                self._servers.append(valkey)
                valkey.start()
                redis_url = valkey.url
            if not bootstrap:
                kafka = EmbeddedKafka(logs / "kafka.log")
                self._servers.append(kafka)
                kafka.start()
                bootstrap = kafka.bootstrap
        except BaseException:
            self.stop()
            raise
        return Endpoints(database_url, redis_url, bootstrap)

    def stop(self) -> None:
        for server in reversed(self._servers):
            server.stop()
        self._servers.clear()

    @property
    def started(self) -> list[str]:
        return [type(s).__name__.removeprefix("Embedded") for s in self._servers]

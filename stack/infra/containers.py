"""`OTC_INFRA=containers`: real PostgreSQL, Redis and Apache Kafka in Docker.

For who has a Docker engine and wants the servers production runs rather than the
embedded ones: testcontainers starts one container for each of
`OTC_DATABASE_URL`, `OTC_REDIS_URL`, `OTC_KAFKA_BOOTSTRAP` that is not set (a URL
that is set is used as it is) on a free host port, and removes it on stop. Kafka
is Confluent's build of Apache Kafka in KRaft mode (no ZooKeeper). Nothing else
in the platform needs Docker: testcontainers is imported only when this starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from otc.settings import Settings
from stack.infra.provider import Endpoints

POSTGRES_IMAGE = "postgres:17-alpine"
REDIS_IMAGE = "redis:7.4-alpine"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"  # Apache Kafka 3.9
DATABASE = "otc"  # database, user and password: a throwaway server on loopback


class Container(Protocol):
    """What the provider needs of a started testcontainers container."""

    def get_container_host_ip(self) -> str: ...

    def get_exposed_port(self, port: int) -> int | str: ...

    def stop(self) -> None: ...


def postgres_url(container: Container) -> str:
    host, port = container.get_container_host_ip(), container.get_exposed_port(5432)
    return f"postgresql://{DATABASE}:{DATABASE}@{host}:{port}/{DATABASE}"


def redis_url(container: Container) -> str:
    host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
    return f"redis://{host}:{port}/0"


def kafka_bootstrap(container: Container) -> str:
    host, port = container.get_container_host_ip(), container.get_exposed_port(9093)
    return f"{host}:{port}"


def start_postgres() -> Container:
    from testcontainers.community.postgres import PostgresContainer

    container = PostgresContainer(
        POSTGRES_IMAGE, username=DATABASE, password=DATABASE, dbname=DATABASE, driver=None
    )
    container.start()
    return container


def start_redis() -> Container:
    from testcontainers.community.redis import RedisContainer

    container = RedisContainer(REDIS_IMAGE)
    container.start()
    return container


def start_kafka() -> Container:
    from testcontainers.community.kafka import KafkaContainer

    container = KafkaContainer(KAFKA_IMAGE).with_kraft()
    container.start()
    return container


@dataclass(frozen=True, slots=True)
class Server:
    """One server the provider may start: how, and the endpoint it then serves."""

    name: str
    start: Callable[[], Container]
    endpoint: Callable[[Container], str]


POSTGRES = Server("PostgreSQL", start_postgres, postgres_url)
REDIS = Server("Redis", start_redis, redis_url)
KAFKA = Server("Kafka", start_kafka, kafka_bootstrap)


class ContainerInfrastructure:
    def __init__(
        self,
        settings: Settings,
        servers: tuple[Server, Server, Server] = (POSTGRES, REDIS, KAFKA),
    ) -> None:
        self.settings = settings
        self.servers = servers
        self._running: list[tuple[str, Container]] = []

    def start(self) -> Endpoints:
        s = self.settings
        given = (s.database_url, s.redis_url, s.kafka_bootstrap)
        try:
            found = [
                url or self._start(server) for url, server in zip(given, self.servers, strict=True)
            ]
        except BaseException:
            self.stop()
            raise
        return Endpoints(*found)

    def _start(self, server: Server) -> str:
        container = server.start()
        self._running.append((server.name, container))
        return server.endpoint(container)

    def stop(self) -> None:
        for _, container in reversed(self._running):
            container.stop()
        self._running.clear()

    @property
    def started(self) -> list[str]:
        return [f"{name} (container)" for name, _ in self._running]

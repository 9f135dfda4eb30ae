"""Where the servers come from: `OTC_INFRA` picks the provider, and each one turns
its servers into the endpoints the services are given. No container is started
here (the machine needs no Docker): the containers provider is checked against
stand-ins of the testcontainers classes it builds."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from otc.settings import Settings
from stack.infra import containers
from stack.infra.containers import ContainerInfrastructure, Server
from stack.infra.embedded import EmbeddedInfrastructure
from stack.infra.external import ExternalInfrastructure
from stack.infra.provider import Endpoints, MissingEndpoints, infrastructure_for

URLS = {
    "database_url": "postgresql://otc@db.example:5432/otc",
    "redis_url": "redis://cache.example:6379/0",
    "kafka_bootstrap": "broker.example:9092",
}


def test_embedded_servers_are_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTC_INFRA", raising=False)
    assert isinstance(infrastructure_for(Settings(), tmp_path), EmbeddedInfrastructure)


@pytest.mark.parametrize(
    ("value", "provider"),
    [
        ("embedded", EmbeddedInfrastructure),
        ("external", ExternalInfrastructure),
        ("containers", ContainerInfrastructure),
    ],
)
def test_otc_infra_picks_the_provider(
    value: str, provider: type, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTC_INFRA", value)
    assert isinstance(infrastructure_for(Settings(), tmp_path), provider)


def test_an_unknown_provider_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTC_INFRA", "vms")
    with pytest.raises(ValueError, match="infra"):
        Settings()


def test_external_urls_are_the_endpoints_and_nothing_is_started() -> None:
    infrastructure = ExternalInfrastructure(Settings(**URLS))
    assert infrastructure.start() == Endpoints(**URLS)
    assert infrastructure.started == []


def test_external_urls_missing_are_named() -> None:
    settings = Settings(database_url=URLS["database_url"], redis_url=None, kafka_bootstrap=None)
    with pytest.raises(MissingEndpoints, match="OTC_REDIS_URL, OTC_KAFKA_BOOTSTRAP"):
        ExternalInfrastructure(settings).start()


@dataclass
class FakeContainer:
    """A started container as testcontainers gives it: a host and mapped ports."""

    image: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    kraft: bool = False
    started: bool = False
    stopped: bool = False

    def get_container_host_ip(self) -> str:
        return "127.0.0.1"

    def get_exposed_port(self, port: int) -> str:
        return str(40000 + port)

    def with_kraft(self) -> FakeContainer:
        self.kraft = True
        return self

    def start(self) -> FakeContainer:
        self.started = True
        return self

    def stop(self) -> None:
        self.stopped = True


def test_the_containers_are_the_pinned_postgres_redis_and_kafka_images(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: dict[str, FakeContainer] = {}

    def stand_in(kind: str) -> Any:
        def build(image: str, **options: Any) -> FakeContainer:
            built[kind] = FakeContainer(image, options)
            return built[kind]

        return build

    monkeypatch.setattr("testcontainers.community.postgres.PostgresContainer", stand_in("postgres"))
    monkeypatch.setattr("testcontainers.community.redis.RedisContainer", stand_in("redis"))
    monkeypatch.setattr("testcontainers.community.kafka.KafkaContainer", stand_in("kafka"))

    endpoints = ContainerInfrastructure(Settings(**dict.fromkeys(URLS))).start()

    assert endpoints == Endpoints(
        database_url="postgresql://otc:otc@127.0.0.1:45432/otc",
        redis_url="redis://127.0.0.1:46379/0",
        kafka_bootstrap="127.0.0.1:49093",
    )
    assert {kind: c.image for kind, c in built.items()} == {
        "postgres": "postgres:17-alpine",
        "redis": "redis:7.4-alpine",
        "kafka": "confluentinc/cp-kafka:7.9.0",
    }
    assert built["postgres"].options == {
        "username": "otc",
        "password": "otc",
        "dbname": "otc",
        "driver": None,
    }
    assert built["kafka"].kraft
    assert all(c.started for c in built.values())


class Recorded:
    """A started container that notes when it is stopped."""

    def __init__(self, name: str, events: list[str]) -> None:
        self.name, self.events = name, events

    def stop(self) -> None:
        self.events.append(f"stop {self.name}")


def _fake_server(name: str, events: list[str], fail: bool = False) -> Server:
    def start() -> Recorded:
        if fail:
            raise RuntimeError(f"{name} did not start")
        events.append(f"start {name}")
        return Recorded(name, events)

    return Server(name, start, lambda _: f"{name}-url")


def test_a_url_that_is_set_is_used_and_only_the_others_are_started() -> None:
    events: list[str] = []
    servers = (
        _fake_server("pg", events),
        _fake_server("redis", events),
        _fake_server("kafka", events),
    )
    settings = Settings(redis_url=URLS["redis_url"], database_url=None, kafka_bootstrap=None)
    infrastructure = ContainerInfrastructure(settings, servers)

    assert infrastructure.start() == Endpoints("pg-url", URLS["redis_url"], "kafka-url")
    assert infrastructure.started == ["pg (container)", "kafka (container)"]
    infrastructure.stop()
    infrastructure.stop()
    assert events == ["start pg", "start kafka", "stop kafka", "stop pg"]


def test_a_container_that_fails_to_start_stops_the_ones_before_it() -> None:
    events: list[str] = []
    servers = (
        _fake_server("pg", events),
        _fake_server("redis", events),
        _fake_server("kafka", events, fail=True),
    )
    infrastructure = ContainerInfrastructure(Settings(**dict.fromkeys(URLS)), servers)
    with pytest.raises(RuntimeError, match="kafka did not start"):
        infrastructure.start()
    assert events == ["start pg", "start redis", "stop redis", "stop pg"]
    assert infrastructure.started == []


def test_nothing_needs_docker_until_the_containers_provider_starts() -> None:
    probe = (
        "import sys, stack.cli, stack.infra.containers, stack.infra.platform; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('testcontainers', 'docker')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "[]"
    assert containers.POSTGRES.endpoint is containers.postgres_url

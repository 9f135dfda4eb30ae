"""The infrastructure provider seam: where PostgreSQL, Redis and Kafka come from.

`OTC_INFRA` picks one provider; each is started once before the services and
stopped after them:

    embedded    (default) an embedded server for each of `OTC_DATABASE_URL`,
                `OTC_REDIS_URL`, `OTC_KAFKA_BOOTSTRAP` that is not set
    external    only those URLs, all three required; nothing is started
    containers  a Docker container (testcontainers) for each of them not set
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from otc.settings import Settings


@dataclass(frozen=True, slots=True)
class Endpoints:
    database_url: str
    redis_url: str
    kafka_bootstrap: str


class Infrastructure(Protocol):
    """PostgreSQL, Redis and Kafka for one platform."""

    def start(self) -> Endpoints:
        """Starts what is needed and says where each server is."""

    def stop(self) -> None:
        """Stops whatever `start` started; safe to call twice, or after a failed start."""

    @property
    def started(self) -> list[str]:
        """What `start` started, for the operator (empty: servers of someone else)."""


class MissingEndpoints(ValueError):
    """`OTC_INFRA=external` without every URL it needs."""


def infrastructure_for(settings: Settings, state_dir: Path) -> Infrastructure:
    """The provider `OTC_INFRA` names, over the state directory of the platform."""
    # Imported here: each provider pulls in its own libraries, none needed by the others.
    if settings.infra == "external":
        from stack.infra.external import ExternalInfrastructure

        return ExternalInfrastructure(settings)
    if settings.infra == "containers":
        from stack.infra.containers import ContainerInfrastructure

        return ContainerInfrastructure(settings)
    from stack.infra.embedded import EmbeddedInfrastructure

    return EmbeddedInfrastructure(settings, state_dir)

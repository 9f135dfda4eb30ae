"""uvicorn inside a service that owns its signals.

uvicorn's `Server.serve()` installs its own SIGINT/SIGTERM handlers and re-raises
the signal after shutting down; in our services the `serve` runner handles signals
and stops every part in order, so the HTTP server must leave them alone.
"""

from __future__ import annotations

from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import uvicorn


class _Server(uvicorn.Server):
    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def http_server(app: Any, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    return _Server(config)

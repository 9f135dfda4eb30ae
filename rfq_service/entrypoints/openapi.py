"""The trader API's OpenAPI document, drawn from the app itself.

`python -m rfq_service.entrypoints.openapi` writes docs/openapi.json (`make docs`);
a test fails when the committed file no longer matches the code. The app is built
with inert dependencies: nothing connects to anything to describe the API.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from otc.auth import Principal, Unauthorized
from otc.bus.requests import Replies
from otc.clock import SystemClock
from otc.db import make_engine
from otc.rate_limit import TokenBuckets
from otc.settings import Settings
from rfq_service.entrypoints.audit_proxy import audit_router
from rfq_service.entrypoints.http import create_app
from rfq_service.entrypoints.hub import Hub
from rfq_service.entrypoints.ws import SocketDeps
from rfq_service.service_layer.edge import Edge
from rfq_service.service_layer.prices import PriceBoard

TARGET = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def _refuse(_: str) -> Principal:
    raise Unauthorized("documentation only")


def schema() -> dict[str, Any]:
    defaults = Settings()
    edge = Edge(
        engine=make_engine("postgresql://docs.invalid/otc", pool_size=1),
        replies=Replies(),
        clock=SystemClock(),
        reply_timeout_s=1.0,
    )
    buckets = TokenBuckets(rate_per_s=1, burst=1)
    socket = SocketDeps(
        edge=edge,
        hub=Hub(),
        verify=_refuse,
        makers=defaults.maker_ids,
        buckets=buckets,
        prices=PriceBoard(),
        price_max_hz=1,
    )
    app = create_app(
        edge=edge,
        socket=socket,
        verify=_refuse,
        buckets=buckets,
        makers=defaults.maker_ids,
        ready=lambda: False,
        routers=(audit_router("http://audit.invalid", authenticate=_refuse),),
    )
    return app.openapi()


def render() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render())
    sys.stdout.write(f"wrote {TARGET}\n")

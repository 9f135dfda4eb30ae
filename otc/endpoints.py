"""The endpoints file: where a local `otc up` runs the platform's servers.

The launcher writes it into the state directory when everything is up and removes
it when it stops; a command run from a shell (`otc check`, `otc quoter`, `otc eod`,
`otc ledger`) reads it when the `OTC_*` settings do not say where the servers are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from otc.settings import Settings

ENDPOINTS_FILE = "endpoints.json"


def endpoints_path(settings: Settings) -> Path:
    return settings.state_dir / ENDPOINTS_FILE


def write_endpoints(path: Path, endpoints: Mapping[str, str]) -> None:
    path.write_text(json.dumps(dict(endpoints), indent=2))


def recorded(settings: Settings, key: str) -> str | None:
    """What a local `otc up` wrote down about the platform it runs, if it did."""
    path = endpoints_path(settings)
    if not path.exists():
        return None
    value = json.loads(path.read_text()).get(key)
    return value if isinstance(value, str) else None


def database_url(settings: Settings) -> str | None:
    return settings.database_url or recorded(settings, "database_url")


def kafka_bootstrap(settings: Settings) -> str | None:
    return settings.kafka_bootstrap or recorded(settings, "kafka_bootstrap")


def redis_url(settings: Settings) -> str | None:
    return settings.redis_url or recorded(settings, "redis_url")

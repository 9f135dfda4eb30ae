"""Where the platform's servers are, for a command run from a shell: the `OTC_*`
settings, or else what a local `otc up` wrote down in its endpoints file."""

from __future__ import annotations

import json

from otc.settings import Settings

ENDPOINTS_FILE = "endpoints.json"


def recorded(settings: Settings, key: str) -> str | None:
    """What a local `otc up` wrote down about the platform it runs, if it did."""
    path = settings.state_dir / ENDPOINTS_FILE
    if not path.exists():
        return None
    value = json.loads(path.read_text()).get(key)
    return value if isinstance(value, str) else None


def database_url(settings: Settings) -> str | None:
    return settings.database_url or recorded(settings, "database_url")


def kafka_bootstrap(settings: Settings) -> str | None:
    return settings.kafka_bootstrap or recorded(settings, "kafka_bootstrap")

"""Where the platform's servers come from, and the launcher that runs it on them.

`provider.py` is the seam: PostgreSQL, Redis and Kafka come from embedded servers
(PyPI wheels started as child processes, the default), from external URLs, or
from Docker containers, as `OTC_INFRA` says. `platform.py` runs every service on
whatever the provider gives; `supervisor.py` keeps them running under `otc up`."""

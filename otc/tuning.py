"""The settings that trade latency against idle work and connections: how long a
consumer's fetch waits, how often each sweeper, relay and sequencer looks for work,
and how many database connections each service keeps. `Settings` inherits them, so
they are read from `OTC_*` variables like every other setting.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Tuning(BaseModel):
    kafka_session_timeout_ms: int = Field(
        default=10_000,
        ge=1_000,
        description="how long a consumer group waits for a member that stopped heartbeating "
        "(a crash) before its partitions move to the others",
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=20,
        ge=1,
        le=10_000,
        description="how long a consumer's fetch may wait for records. The embedded broker "
        "answers a fetch only when this runs out, so it is the latency of every hop there, "
        "and each idle consumer costs the broker one fetch per wait; Apache Kafka answers "
        "as soon as records arrive, so 500 (its default) costs no latency there",
    )
    kafka_background_fetch_max_wait_ms: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="the same for consumers no deal waits on (the edge's read-model "
        "catch-up, which the edge's live feed keeps ahead of, and risk_limits' settlement "
        "events, which free a settled trade's exposure this much later at most): each idle "
        "consumer keeps the embedded broker and its own process busy in proportion to how "
        "often it fetches, so these fetch seldom",
    )
    reconcile_interval_ms: int = Field(
        default=30_000,
        gt=0,
        description="how often order_core reconciles orders with credit reservations",
    )
    deadline_sweep_interval_ms: int = Field(
        default=250,
        gt=0,
        description="how often order_core ends RFQs and last looks past their deadline: "
        "shorter ends them nearer it, at the cost of more queries while idle",
    )
    audit_sequencer_poll_ms: int = Field(
        default=50,
        gt=0,
        description="how often the sequencer looks for committed audit events to integrate "
        "while they come in; rounds that find none back off to 400 ms",
    )
    reservation_sweep_interval_ms: int = Field(
        default=1_000,
        gt=0,
        description="how often risk_limits releases freezes past their deadline: shorter "
        "frees their credit sooner, at the cost of more queries while idle",
    )
    settlement_retry_sweep_interval_ms: int = Field(
        default=200,
        gt=0,
        description="how often settlement looks for refused settlements due another attempt: "
        "shorter retries nearer the due time, at the cost of more queries while idle",
    )
    outbox_poll_ms: int = Field(
        default=1_000,
        gt=0,
        description="longest an outbox relay waits for a LISTEN/NOTIFY wake-up before it "
        "looks for unsent events anyway: shorter publishes an event whose wake-up was "
        "missed sooner, at the cost of more queries while idle",
    )
    order_core_db_pool_size: int = Field(
        default=10,
        ge=1,
        description="database connections order_core keeps open for its consumers, sweeps, "
        "relay and sequencer (as many again may open under a burst)",
    )
    order_core_audit_db_pool_size: int = Field(
        default=2,
        ge=1,
        description="database connections order_core keeps open for its audit API apart, "
        "so that a slow export cannot starve the order consumers (as many again may open "
        "under a burst)",
    )
    rfq_service_db_pool_size: int = Field(
        default=20,
        ge=1,
        description="database connections the trader edge keeps open for its requests, feeds "
        "and relay (as many again may open under a burst)",
    )
    risk_limits_db_pool_size: int = Field(
        default=10,
        ge=1,
        description="database connections risk_limits keeps open for its gRPC calls, consumer "
        "and sweep (as many again may open under a burst)",
    )
    settlement_db_pool_size: int = Field(
        default=10,
        ge=1,
        description="database connections settlement keeps open for its consumer, retry sweep "
        "and relay (as many again may open under a burst)",
    )

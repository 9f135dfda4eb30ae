"""The published OpenAPI document is the app's own, and requests generated from
it (valid and invalid) never make the running edge answer with a 5xx."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from otc.auth import Role
from rfq_service.entrypoints.openapi import TARGET, render
from stack.infra.platform import Platform
from tests.e2e_helpers import base_url, token_for

EXAMPLES = 25


def test_the_committed_openapi_document_matches_the_app() -> None:
    assert TARGET.read_text() == render(), (
        "docs/openapi.json is stale; regenerate: python -m rfq_service.entrypoints.openapi"
    )


def _check_operation(operation: Any, url: str, headers: dict[str, str]) -> list[str]:
    failures: list[str] = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            response = case.call(base_url=url, headers=headers, timeout=30)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query} {case.body!r}: "
                    f"{response.status_code} {response.text[:200]}"
                )

        check()
    return failures


def _fuzz(url: str, tokens: dict[str, str]) -> list[str]:
    schema = schemathesis.openapi.from_dict(json.loads(TARGET.read_text()))
    failures: list[str] = []
    operations = list(schema.get_all_operations())
    assert len(operations) >= 7, "every route of the document is exercised"
    for result in operations:
        operation: Any = result.ok()  # type: ignore[union-attr]
        role = "auditor" if operation.path.startswith("/v1/audit") else "trader"
        failures += _check_operation(operation, url, {"Authorization": f"Bearer {tokens[role]}"})
    return failures


async def test_generated_requests_never_get_a_server_error(platform: Platform) -> None:
    tokens = {
        "trader": token_for(platform, "TRADER-A", Role.TRADER),
        "auditor": token_for(platform, "AUDITOR", Role.AUDITOR),
    }
    failures = await asyncio.to_thread(_fuzz, base_url(platform), tokens)
    assert not failures, "\n".join(failures)

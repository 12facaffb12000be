"""The published OpenAPI document against the live service, with schemathesis and all its checks.

Every operation is called with generated valid (positive) and invalid (negative) input; any
5xx, any status or body the document doesn't promise, any promised header that is missing,
fails. Bounded (a few dozen examples per operation and mode) to fit CI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

MAX_EXAMPLES = 25
# Operations whose schema-valid input can still be refused for what a file contains (422).
CONTENT_CHECKED = {"POST /api/admin/import/listenbrainz"}


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_every_operation_keeps_its_contract(serve: Callable[..., str], mode: GenerationMode) -> None:
    url = serve()
    # Text may not contain NUL (PostgreSQL can't store it): the API answers 422, as API.md says.
    # Nor an unpaired UTF-16 surrogate (text that can't be UTF-8).
    config = SchemathesisConfig.from_dict({"generation": {"allow-x00": False, "codec": "utf-8"}})
    schema = schemathesis.openapi.from_url(url + "/openapi.json", config=config)
    load_all_checks()
    checks = CHECKS.get_all()
    assert len(checks) >= 10  # every check schemathesis has, not just the server-error one
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 16
    if mode == GenerationMode.NEGATIVE:
        # Only an operation that takes input can be sent invalid input.
        operations = [o for o in operations if o.body or any(True for _ in o.iter_parameters())]
    failures: list[str] = []
    for operation in operations:
        used = checks
        if operation.label in CONTENT_CHECKED:
            # The upload's schema is "a file": whether the file is a ListenBrainz export only
            # its content says, which no schema can. Every other check still runs on it.
            used = [c for c in checks if c.__name__ != "positive_data_acceptance"]
        try:
            _examples(operation, mode, url, used)()
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def _examples(operation: Any, mode: GenerationMode, url: str, checks: list[Any]) -> Callable[[], None]:
    """Hypothesis examples of one operation, each called and checked against the document."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        case.call_and_validate(base_url=url, checks=checks)

    return run  # type: ignore[no-any-return]

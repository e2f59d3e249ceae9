"""Fault tests: real ``kill -9`` of subprocesses at random points, then the next run.

Kill times are drawn from ``$FAULT_SEED`` (default: the clock, printed in the summary so
a failure can be replayed). The summary line gives the number of kills survived.
"""

from __future__ import annotations

import os
import random
import time

import pytest

SEED = int(os.environ.get("FAULT_SEED") or time.time_ns() % 1_000_000)
KILLS: list[str] = []


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """Random kill points, reproducible from FAULT_SEED and the test's name."""
    return random.Random(f"{SEED}|{request.node.nodeid}")


@pytest.fixture
def survived() -> list[str]:
    """Append one label per kill the test checked recovery from."""
    return KILLS


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest hook
    if KILLS:
        kinds: dict[str, int] = {}
        for k in KILLS:
            kinds[k.split(":")[0]] = kinds.get(k.split(":")[0], 0) + 1
        terminalreporter.write_line(
            f"faults: {len(KILLS)} kills survived (FAULT_SEED={SEED}): "
            + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))

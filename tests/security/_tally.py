"""Counts for the closing figures (attacks tried, fuzz cases run), printed at the end of
the pytest run: ``bad input: ...`` in the terminal summary."""

from __future__ import annotations

from collections import Counter

import pytest

COUNTS: Counter[str] = Counter()


class _Summary:
    def pytest_terminal_summary(self, terminalreporter) -> None:  # noqa: ANN001 - hook
        if COUNTS:
            terminalreporter.write_line("bad input: " + ", ".join(
                f"{n} {what}" for what, n in sorted(COUNTS.items())))


def register(config: pytest.Config) -> None:
    """Print COUNTS in the terminal summary (once per run)."""
    if not config.pluginmanager.has_plugin("bad-input-tally"):
        config.pluginmanager.register(_Summary(), "bad-input-tally")

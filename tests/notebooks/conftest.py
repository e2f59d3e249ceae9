"""Notebook tests: each notebook in notebooks/ is published (executed top to bottom in a
fresh kernel by :func:`workbench.rerun.publish`) on a synthetic release, and its recorded
key numbers are checked against independent computations."""

from __future__ import annotations

import pytest
from _nbrun import publish_notebook


@pytest.fixture(scope="session")
def published_quickstart(small_release, tmp_path_factory):
    """01_quickstart published on the small release: (path, record)."""
    return publish_notebook("01_quickstart", small_release, tmp_path_factory.mktemp("nb01"))

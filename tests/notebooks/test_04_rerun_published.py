"""04_rerun_published on the small release: the walk-through's three reruns give the exit
codes it describes (pass, fail on a tampered result, fail on another environment)."""

from __future__ import annotations

import pytest
from _nbrun import check_rerun, outputs_text, publish_notebook


@pytest.fixture(scope="module")
def published(small_release, tmp_path_factory):
    return publish_notebook("04_rerun_published", small_release, tmp_path_factory.mktemp("nb04"))


def test_walkthrough_reruns_pass_then_fail_as_described(published):
    path, rec = published
    r = {k: v["value"] for k, v in rec.results.items()}
    assert r == {"rerun_same_exit_code": 0, "rerun_tampered_exit_code": 1,
                 "rerun_environment_exit_code": 1}
    text = outputs_text(path)
    assert "reran and every recorded result holds" in text
    assert "fail: result persons: recorded " in text
    assert "fail: environment lock_sha256: recorded 0000" in text


def test_rerun_passes_and_names_an_altered_number_or_release(published, small_release,
                                                            tmp_path):
    check_rerun(published[0], small_release, tmp_path)

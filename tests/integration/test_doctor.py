"""`workbench doctor` on this machine, including the real Hail start-up smoke test."""

from __future__ import annotations

import shutil

import pytest

from workbench import doctor


@pytest.mark.java
@pytest.mark.skipif(shutil.which("java") is None, reason="Java is installed by make test")
def test_hail_smoke_starts_hail_and_counts():
    ok, found, _todo = doctor.check_hail_smoke()
    assert ok, found
    assert "range_table(10) ok" in found


def test_doctor_reports_every_check(small_release):
    lines: list[str] = []
    doctor.run_checks(small_release, hail=False, echo=lines.append)
    names = [line.split()[1] for line in lines if line.startswith(("ok", "FAIL"))]
    assert names == ["python", "java", "resources", "duckdb", "polars", "hail", "spark",
                     "release"]
    assert any(line.startswith("ok ") and "3,000 persons" in line for line in lines)

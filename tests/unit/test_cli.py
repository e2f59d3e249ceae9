"""The command line: one-line errors with exit codes, `release synth`, `release info`, `doctor`.

(`release report` and `demo` are tested with the report.)
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import psutil
import pytest
from click.testing import Result
from typer.testing import CliRunner

from workbench.cli import app
from workbench.schema import GENOTYPE_VCF, TABLES, table_file

PERSONS = 1200
SYNTH = ["--persons", str(PERSONS), "--genotyped", "100", "--variants", "300", "--seed", "4"]


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(app, list(args), env=env)
    # An exit (even a failing one) is fine; any other exception is a bare traceback.
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Result]:
    out = tmp_path_factory.mktemp("cli") / "release"
    return out, _run("release", "synth", "--out", str(out), *SYNTH, "--quiet")


@pytest.fixture
def release(built: tuple[Path, Result]) -> Path:
    out, result = built
    assert result.exit_code == 0, result.output
    return out


def _manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text(encoding="utf-8"))


# --- release synth ----------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "needle"), [
    pytest.param(["--persons", "-5"], "--persons", id="negative-persons"),
    pytest.param(["--persons", "300", "--genotyped", "400"], "cannot exceed",
                 id="genotyped-above-persons"),
    pytest.param(["--persons", "300", "--genotyped", "10"], "--genotyped", id="genotyped-10"),
    pytest.param(["--persons", "300", "--genotyped", "100", "--variants", "20"], "--variants",
                 id="few-variants"),
])
def test_synth_bad_arguments(tmp_path: Path, args: list[str], needle: str) -> None:
    out = tmp_path / "out"
    result = _run("release", "synth", "--out", str(out), *args, "--quiet")
    assert result.exit_code == 2
    errors = _lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: ")
    assert needle in errors[0]
    assert result.stdout == ""
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_synth_existing_out_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = _run("release", "synth", "--out", str(out), "--persons", "300", "--genotyped", "0",
                  "--quiet")
    assert result.exit_code == 2
    errors = _lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: ")
    assert "--force" in errors[0] and str(out) in errors[0]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_synth_builds_and_prints_release_id(built: tuple[Path, Result]) -> None:
    out, result = built
    assert result.exit_code == 0, result.output
    manifest = _manifest(out)
    assert manifest["tables"]["person"]["rows"] == PERSONS
    assert manifest["generator"]["arguments"] == {"persons": PERSONS, "genotyped": 100,
                                                  "variants": 300, "seed": 4}
    printed = _lines(result.stdout)
    assert len(printed) == 1
    assert manifest["release_id"] in printed[0]
    assert f"{PERSONS:,} persons" in printed[0]
    assert result.stderr == ""                         # --quiet: no progress bars


def test_synth_force_replaces(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["release", "synth", "--out", str(out), "--persons", "300", "--genotyped", "0",
            "--quiet"]
    first = _run(*args, "--seed", "1")
    second = _run(*args, "--seed", "2", "--force")
    assert first.exit_code == second.exit_code == 0
    rid = _manifest(out)["release_id"]
    assert rid in second.stdout and rid not in first.stdout


# --- release info -----------------------------------------------------------------------------

def test_info_lists_tables_and_person_rows(release: Path) -> None:
    result = _run("release", "info", str(release))
    assert result.exit_code == 0, result.output
    out = result.stdout
    manifest = _manifest(release)
    assert manifest["release_id"] in out
    names = {line.split()[0] for line in _lines(out)}
    assert set(TABLES) <= names
    (person,) = [line for line in _lines(out) if line.split()[0] == "person"]
    assert f"{PERSONS:,}" in person.split()
    assert GENOTYPE_VCF in out


def test_info_json_equals_manifest(release: Path) -> None:
    result = _run("release", "info", str(release), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == _manifest(release)


def test_info_on_corrupted_release(release: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    (copy / table_file("measurement")).unlink()
    result = _run("release", "info", str(copy))
    assert result.exit_code == 1
    lines = _lines(result.stderr)
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("error: ") and "measurement" in lines[0]
    assert lines[1].startswith("hint: ")
    assert result.stdout == ""


def test_info_on_missing_release(tmp_path: Path) -> None:
    result = _run("release", "info", str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    lines = _lines(result.stderr)
    assert [line.split(":")[0] for line in lines] == ["error", "hint"]
    assert "nowhere" in lines[0]


def test_info_no_verify_reads_a_damaged_release(release: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    (copy / table_file("measurement")).unlink()
    result = _run("release", "info", str(copy), "--no-verify", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["release_id"] == _manifest(release)["release_id"]


# --- doctor -----------------------------------------------------------------------------------

def _doctor_lines(result: Result) -> dict[str, str]:
    """check name -> its status line ('ok' / 'FAIL' lines, not the '->' advice lines)."""
    found = {}
    for line in _lines(result.stdout):
        status, _, rest = line.partition(" ")
        if status in ("ok", "FAIL"):
            found[rest.split()[0]] = line
    return found


@pytest.mark.skipif(not (os.environ.get("JAVA_HOME") or shutil.which("java"))
                    or importlib.util.find_spec("hail") is None
                    or psutil.virtual_memory().total < 4 * 2**30,
                    reason="needs Java, the genomics extra (hail) and 4 GiB of memory")
def test_doctor_all_ok(release: Path) -> None:
    result = _run("doctor", "--no-hail", "--release", str(release))
    assert result.exit_code == 0, result.output
    checks = _doctor_lines(result)
    for name in ("python", "java", "duckdb", "release"):
        assert checks[name].startswith("ok "), checks
    assert _manifest(release)["release_id"] in checks["release"]
    assert "smoke" not in result.stdout                  # --no-hail


def test_doctor_without_java(release: Path, tmp_path: Path) -> None:
    jdk = tmp_path / "empty-jdk"
    jdk.mkdir()
    result = _run("doctor", "--no-hail", "--release", str(release),
                  env={"JAVA_HOME": str(jdk)})
    assert result.exit_code == 1
    checks = _doctor_lines(result)
    assert checks["java"].startswith("FAIL")
    assert "not found" in checks["java"]
    assert "openjdk-17-jre-headless" in result.stdout
    for name in ("python", "duckdb", "release"):
        assert name in checks
    assert checks["release"].startswith("ok ")


def test_doctor_reports_damaged_release(release: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    (copy / table_file("person")).unlink()
    result = _run("doctor", "--no-hail", "--release", str(copy))
    checks = _doctor_lines(result)
    assert checks["release"].startswith("FAIL")
    assert "person" in checks["release"]
    assert "rebuild" in result.stdout                    # the hint, on the advice line


def test_demo_reports_the_release_then_the_flagship_study(small_release, tmp_path,
                                                          monkeypatch):
    """`workbench demo` writes the release report, then runs the flagship study (its real
    run is checked against the truth in tests/integration/test_gwas.py) and prints one
    line per GWAS; --no-genomics stops after the report."""
    from genomics import flagship

    calls = []

    def fake(cat, out, *, progress=None):
        calls.append((cat.release_id, out))
        return flagship.Flagship({"studies": [
            {"title": "LDL", "samples_analysed": 812, "lambda_gc": 1.0132, "hits": 12,
             "truth": {"planted": 10, "found": 9, "hits_outside_blocks": 0}},
            {"title": "T2D", "samples_analysed": "< 20", "lambda_gc": 1.03, "hits": 0}]}, {})

    monkeypatch.setattr(flagship, "run_flagship", fake)
    r = _run("demo", "--release", str(small_release), "--outputs", str(tmp_path),
             "--no-genomics")
    assert r.exit_code == 0 and (tmp_path / "release_report.html").is_file()
    assert calls == [] and "flagship" not in r.stdout
    r = _run("demo", "--release", str(small_release), "--outputs", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert calls and calls[0][1] == tmp_path / "flagship"
    lines = _lines(r.stdout)
    assert lines[1] == ("LDL: 812 samples, lambda GC 1.013, 12 hits; planted variants "
                        "found 9/10")
    assert lines[2] == "T2D: < 20 samples, lambda GC 1.030, 0 hits"
    assert lines[3].endswith("flagship/flagship.html")

"""`workbench rerun`: a published notebook reruns as pass; a tampered result, another
release or another lock file make it fail, naming the first difference and its kind."""

from __future__ import annotations

import shutil

import nbformat
import pytest
from typer.testing import CliRunner

from workbench.cli import app
from workbench.errors import UsageError
from workbench.rerun import NotebookFailed, publish, rerun
from workbench.synth.build import build_release


def _tampered(path, tmp_path, change):
    nb = nbformat.read(path, as_version=4)
    change(nb.metadata["workbench"])
    out = tmp_path / path.name
    nbformat.write(nb, out)
    return out


def test_published_notebook_reruns_as_pass(published_quickstart, small_release, tmp_path):
    path, _ = published_quickstart
    kept = tmp_path / "rerun.ipynb"
    res = CliRunner().invoke(app, ["rerun", str(path), "--release", str(small_release),
                                   "--out", str(kept)])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"pass: {path}")
    nb = nbformat.read(kept, as_version=4)
    assert nb.metadata["workbench"]["results"]["persons"] == \
        nbformat.read(path, as_version=4).metadata["workbench"]["results"]["persons"]


def test_tampered_result_fails_naming_it(published_quickstart, small_release, tmp_path):
    path, _ = published_quickstart

    def bump(meta):
        meta["results"]["persons"]["value"] += 1
    report = rerun(_tampered(path, tmp_path, bump), release=small_release)
    assert not report.passed
    assert report.summary().startswith("fail: result persons: recorded ")
    assert [d.kind for d in report.differences] == ["result"]


def test_tampered_table_cell_is_named_by_row_and_column(published_quickstart, small_release,
                                                        tmp_path):
    path, _ = published_quickstart

    def edit(meta):
        meta["results"]["attrition"]["rows"][2][1] = "1"
    report = rerun(_tampered(path, tmp_path, edit), release=small_release)
    assert report.summary().startswith("fail: result attrition: row 2, column persons_shown")


def test_another_release_fails_as_release(published_quickstart, tmp_path):
    path, _ = published_quickstart
    other = tmp_path / "other"
    build_release(other, persons=600, genotyped=0, variants=0, seed=8, progress=False)
    res = CliRunner().invoke(app, ["rerun", str(path), "--release", str(other)])
    assert res.exit_code == 1
    assert res.stdout.startswith("fail: release release_id: recorded synth-")
    # every differing checksum follows (then the results, which differ too), capped
    lines = res.stdout.splitlines()
    assert lines[1].startswith("  release content_id: recorded ")
    assert lines[2].startswith("  release file:") and "rerun None" in lines[2]  # no VCF
    assert lines[-1].startswith("  ... and ") and lines[-1].endswith(" more differences")


def test_edited_lock_hash_fails_as_environment(published_quickstart, small_release, tmp_path):
    path, _ = published_quickstart

    def edit(meta):
        meta["environment"]["lock_sha256"] = "0" * 64
    report = rerun(_tampered(path, tmp_path, edit), release=small_release)
    assert report.summary().startswith("fail: environment lock_sha256: recorded 0000")
    assert [d.kind for d in report.differences] == ["environment"]


def test_moved_release_is_found_by_checksums_not_path(published_quickstart, small_release,
                                                      tmp_path):
    """The same release in another folder passes: identity is by content."""
    path, _ = published_quickstart
    moved = tmp_path / "moved"
    shutil.copytree(small_release, moved)
    assert rerun(path, release=moved).passed


def test_failing_cell_and_missing_record_are_clear_errors(small_release, tmp_path):
    src = tmp_path / "bad.py"
    src.write_text("# %%\nraise ValueError('boom')\n")
    with pytest.raises(NotebookFailed, match="ValueError: boom"):
        publish(src, tmp_path / "bad.ipynb", release=small_release)
    src.write_text("# %%\nx = 1\n")
    with pytest.raises(UsageError, match="recorded nothing"):
        publish(src, tmp_path / "none.ipynb", release=small_release)
    plain = tmp_path / "plain.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), plain)
    with pytest.raises(UsageError, match="no run record"):
        rerun(plain)
    assert not (tmp_path / "bad.ipynb").exists()


def test_parameters_are_injected_recorded_and_reused_by_rerun(small_release, tmp_path):
    src = tmp_path / "p.py"
    src.write_text('# %% tags=["parameters"]\nN = 2\n\n# %%\nfrom workbench import catalog, '
                   'runrecord\nrunrecord.start(catalog.open(runrecord.release_path()))\n'
                   'runrecord.record("n_squared", N * N)\n')
    out = tmp_path / "p.ipynb"
    res = CliRunner().invoke(app, ["run-notebook", str(src), "--out", str(out), "--release",
                                   str(small_release), "--param", "N=5"])
    assert res.exit_code == 0, res.output
    meta = nbformat.read(out, as_version=4).metadata["workbench"]
    assert meta["parameters"] == {"N": 5} and meta["results"]["n_squared"]["value"] == 25
    assert rerun(out, release=small_release).passed      # 25 again: N=5 was reused
    bad = CliRunner().invoke(app, ["run-notebook", str(src), "--out", str(out), "--param", "N"])
    assert bad.exit_code == 2 and "NAME=VALUE" in bad.output

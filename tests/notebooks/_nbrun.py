"""Helpers for the notebook tests: publish a notebook, read what a reader sees."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from workbench import runrecord
from workbench.rerun import publish

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def publish_notebook(name: str, release: Path, out_dir: Path
                     ) -> tuple[Path, runrecord.RunRecord]:
    """Publish notebooks/<name>.py on ``release`` into ``out_dir``; the .ipynb and record."""
    out = out_dir / f"{name}.ipynb"
    rec = publish(NOTEBOOKS / f"{name}.py", out, release=release)
    return out, rec


def outputs_text(path: Path) -> str:
    """Every text output of a published notebook, joined (to check what a reader sees)."""
    nb = nbformat.read(path, as_version=4)
    parts = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            parts.append(o.get("text", ""))
            parts.extend(str(v) for k, v in o.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


def check_rerun(path: Path, release: Path, out_dir: Path) -> None:
    """`workbench rerun` on a published notebook: a real re-execution in a clean kernel must
    pass; then the comparison that rerun makes must fail, naming the difference, when the
    published record has a recorded number changed or another release recorded.

    The two failures compare the altered record with the rerun's own record (the same
    ``runrecord.compare`` that ``rerun`` calls), so a notebook that takes minutes runs
    once here; tests/notebooks/test_rerun.py drives the altered cases end to end on 01.
    """
    from typer.testing import CliRunner

    from workbench.cli import app

    kept = out_dir / f"rerun-{path.name}"
    res = CliRunner().invoke(app, ["rerun", str(path), "--release", str(release),
                                   "--out", str(kept)])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith(f"pass: {path} reran and every recorded result holds")
    meta = nbformat.read(path, as_version=4).metadata["workbench"]
    after = runrecord.RunRecord.from_json(nbformat.read(kept, as_version=4).metadata["workbench"])

    # a recorded number altered: the first numeric value result, nudged past its tolerance
    key, entry = next((k, v) for k, v in meta["results"].items()
                      if v["type"] == "value" and isinstance(v["value"], int | float)
                      and not isinstance(v["value"], bool))
    altered = json.loads(json.dumps(meta))
    altered["results"][key]["value"] = entry["value"] + 10 * (entry.get("tolerance") or 0) + 1
    diffs = runrecord.compare(runrecord.RunRecord.from_json(altered), after)
    assert [(d.kind, d.key) for d in diffs] == [("result", key)], diffs
    assert diffs[0].detail.startswith(f"recorded {altered['results'][key]['value']}")

    # another release recorded: named as a release difference, first
    other = json.loads(json.dumps(meta))
    other["release"]["release_id"] = "synth-another"
    other["release"]["content_id"] = "0" * 16
    diffs = runrecord.compare(runrecord.RunRecord.from_json(other), after)
    assert [(d.kind, d.key) for d in diffs] == [("release", "release_id"),
                                                ("release", "content_id")], diffs

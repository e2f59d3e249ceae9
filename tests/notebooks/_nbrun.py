"""Helpers for the notebook tests: publish a notebook, read what a reader sees."""

from __future__ import annotations

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

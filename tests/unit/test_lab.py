"""`make lab` smoke check: the JupyterLab front-end extensions the widgets need are
installed and enabled in the venv, at the versions the Python side asks for.

ipywidgets 8 needs @jupyter-widgets/jupyterlab-manager (package jupyterlab_widgets);
plotly 5's FigureWidget needs jupyterlab-plotly, which the plotly wheel itself installs
(plotly 6 moved to anywidget; this project pins plotly<6 for Hail). JupyterLab 4 marks
jupyterlab-plotly 5.x with an "X": its package.json still names JupyterLab 3's lumino 1,
a compatibility warning only -- the prebuilt extension bundles what it needs and loads.
A version mismatch between plotly and its extension is what breaks FigureWidget
("model not found"), so that is checked too.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("jupyterlab", reason="the lab extra is not installed")

VENV = Path(sys.executable).parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def extensions() -> dict[str, tuple[str, str]]:
    """name -> (version, status line) from `jupyter labextension list` of the venv."""
    r = subprocess.run([str(VENV / "bin" / "jupyter"), "labextension", "list"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    found = {}
    for line in ANSI.sub("", r.stdout + r.stderr).splitlines():
        m = re.match(r"\s+(\S+) v(\S+) (enabled|disabled)(.*)$", line)
        if m:
            found[m[1]] = (m[2], f"{m[3]}{m[4]}")
    return found


def test_widget_manager_is_enabled(extensions):
    import ipywidgets

    version, status = extensions["@jupyter-widgets/jupyterlab-manager"]
    assert status.startswith("enabled") and "OK" in status, status
    assert ipywidgets.__version__.startswith("8.") and version.startswith("5.")


def test_plotly_extension_is_enabled_at_plotly_s_version(extensions):
    import plotly
    import plotly.graph_objects as go

    version, status = extensions["jupyterlab-plotly"]
    assert status.startswith("enabled"), status
    assert version == plotly.__version__
    # what FigureWidget asks the front end for, and what the extension registers
    assert go.FigureWidget._model_module.default_value == "jupyterlab-plotly"
    assert go.FigureWidget._model_module_version.default_value == f"^{version}"
    pkg = VENV / "share/jupyter/labextensions/jupyterlab-plotly/package.json"
    assert json.loads(pkg.read_text())["version"] == version

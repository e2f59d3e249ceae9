"""Publish and rerun notebooks: execute in a clean kernel, keep the run record, compare.

Notebooks are stored as jupytext percent-format ``.py`` files (``notebooks/*.py``), the
source of truth, without outputs. :func:`publish` executes one top to bottom with nbclient
in a fresh kernel and writes the ``.ipynb`` a reader sees: outputs plus the run record
(:mod:`workbench.runrecord`) in ``metadata.workbench``. :func:`rerun` takes such a
published notebook, clears its outputs, executes it again in a fresh kernel, and compares
the new record with the published one (:func:`workbench.runrecord.compare`).

The kernel gets ``$WORKBENCH_RELEASE`` (the release to read) and ``$WORKBENCH_RUN_RECORD``
(where :func:`workbench.runrecord.record` writes), and runs in the notebook's folder.
``parameters`` override assignments of the cell tagged ``parameters`` (as papermill does:
a cell tagged ``injected-parameters`` follows it); they are kept in the run record's
metadata, so a rerun uses the same ones.

>>> Report(published="x.ipynb", differences=[]).summary()
'pass: x.ipynb reran and every recorded result holds'
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench import runrecord
from workbench.errors import UsageError, WorkbenchError

METADATA_KEY = "workbench"
INJECTED = "injected-parameters"


class NotebookFailed(WorkbenchError):
    """A cell raised while the notebook ran (names the cell and the error)."""


def read_notebook(path: Path | str) -> Any:
    """A notebook from a jupytext ``.py`` (percent format) or an ``.ipynb``."""
    import jupytext
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no notebook at {path}")
    if path.suffix == ".py":
        return jupytext.read(path, fmt="py:percent")
    if path.suffix == ".ipynb":
        return nbformat.read(path, as_version=4)
    raise UsageError(f"{path}: a notebook is a jupytext .py (percent format) or an .ipynb")


def clear_outputs(nb: Any) -> Any:
    """A copy without outputs, execution counts and our run record."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop(METADATA_KEY, None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def inject_parameters(nb: Any, parameters: dict[str, Any]) -> Any:
    r"""A copy with an ``injected-parameters`` cell (``NAME = repr(value)`` lines) after the
    cell tagged ``parameters`` (at the top when there is none); earlier injections go.

    >>> import nbformat
    >>> nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("PCS = 10",
    ...     metadata={"tags": ["parameters"]}), nbformat.v4.new_code_cell("print(PCS)")])
    >>> [c.source for c in inject_parameters(nb, {"PCS": 3}).cells]
    ['PCS = 10', '# injected parameters\nPCS = 3', 'print(PCS)']
    """
    import nbformat

    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if INJECTED not in c.get("metadata", {}).get("tags", [])]
    if not parameters:
        return nb
    for name in parameters:
        if not name.isidentifier():
            raise UsageError(f"parameter {name!r} is not a Python name")
    src = "\n".join(["# injected parameters",
                     *[f"{k} = {v!r}" for k, v in parameters.items()]])
    cell = nbformat.v4.new_code_cell(src, metadata={"tags": [INJECTED]})
    at = next((i + 1 for i, c in enumerate(nb.cells)
               if "parameters" in c.get("metadata", {}).get("tags", [])), 0)
    nb.cells.insert(at, cell)
    return nb


def execute(nb: Any, *, release: Path | str, cwd: Path | str, timeout: int = 1800,
            parameters: dict[str, Any] | None = None
            ) -> tuple[Any, runrecord.RunRecord | None, float]:
    """Run ``nb`` top to bottom in a fresh kernel; returns (executed notebook, the run
    record it wrote or None, seconds). A failing cell raises :class:`NotebookFailed`."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = inject_parameters(clear_outputs(nb), parameters or {})
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3",
                                          "language": "python"})
    with tempfile.TemporaryDirectory(prefix="wb-run-") as tmp:
        rec_path = Path(tmp) / "run_record.json"
        env = {**os.environ, runrecord.ENV_RELEASE: str(Path(release).resolve()),
               runrecord.ENV_RECORD: str(rec_path)}
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(cwd)}})
        t0 = time.monotonic()
        try:
            _run_in_own_loop(client, env)
        except CellExecutionError as e:
            raise NotebookFailed(f"a cell failed: {e.ename}: {e.evalue}",
                                 hint="run the notebook in JupyterLab to see the cell") from e
        seconds = time.monotonic() - t0
        record = runrecord.read(rec_path) if rec_path.is_file() else None
    return nb, record, seconds


def _run_in_own_loop(client: Any, env: dict[str, str]) -> None:
    """Execute on a worker thread with an event loop of its own, closed afterwards.

    ``client.execute`` would install a new event loop as the calling thread's current one
    (jupyter_core's ``run_sync``), orphaning one that Hail made there, which is then
    collected unclosed (a ResourceWarning).
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    def work() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(client.async_execute(env=env))
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            loop.close()

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbclient") as pool:
        pool.submit(work).result()


def _write_atomic(nb: Any, out: Path) -> Path:
    import nbformat

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    runrecord.readable(tmp)
    os.replace(tmp, out)
    return out


def publish(source: Path | str, out: Path | str, *, release: Path | str | None = None,
            parameters: dict[str, Any] | None = None, timeout: int = 1800
            ) -> runrecord.RunRecord:
    """Execute ``source`` (.py or .ipynb) and write the published ``out`` .ipynb with its
    outputs and run record; the notebook must start a record (``runrecord.start``)."""
    source, out = Path(source), Path(out)
    release = Path(release) if release is not None else runrecord.release_path()
    nb, record, _ = execute(read_notebook(source), release=release, parameters=parameters,
                            cwd=source.resolve().parent, timeout=timeout)
    if record is None:
        raise UsageError(f"{source} recorded nothing to check",
                         hint="call workbench.runrecord.start(cat) and record(key, value)")
    nb.metadata[METADATA_KEY] = {**record.to_json(), "source": source.name,
                                 "release_path": str(release.resolve()),
                                 "parameters": dict(parameters or {})}
    _write_atomic(nb, out)
    return record


@dataclass
class Report:
    """A rerun's verdict: the differences from the published record, first one first."""

    published: str
    differences: list[runrecord.Difference] = field(default_factory=list)
    seconds: float = 0.0
    release: str = ""

    @property
    def passed(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        if self.passed:
            return f"pass: {self.published} reran and every recorded result holds"
        first = self.differences[0]
        return f"fail: {first.kind} {first.key}: {first.detail}"

    def lines(self, limit: int = 12) -> list[str]:
        """The summary, then the other differences (at most ``limit``, then a count)."""
        rest = self.differences[1:]
        out = [self.summary(), *[f"  {d}" for d in rest[:limit]]]
        if len(rest) > limit:
            out.append(f"  ... and {len(rest) - limit} more differences")
        return out


def rerun(published: Path | str, *, release: Path | str | None = None,
          out: Path | str | None = None, timeout: int = 1800) -> Report:
    """Re-execute a published notebook in a clean kernel and compare its run record.

    ``release`` defaults to the path recorded at publication when it still exists, else
    ``$WORKBENCH_RELEASE`` / ``releases/default``. ``out`` keeps the rerun notebook.
    """
    published = Path(published)
    nb = read_notebook(published)
    meta = nb.metadata.get(METADATA_KEY)
    if not meta:
        raise UsageError(f"{published} has no run record in its metadata",
                         hint="publish it first: workbench run-notebook SRC.py --out X.ipynb")
    before = runrecord.RunRecord.from_json(meta)
    if release is None:
        recorded = meta.get("release_path")
        release = (Path(recorded) if recorded and Path(recorded).is_dir()
                   else runrecord.release_path())
    params = meta.get("parameters") or {}
    ran, after, seconds = execute(nb, release=release, cwd=published.resolve().parent,
                                  timeout=timeout, parameters=params)
    if after is None:
        after = runrecord.RunRecord()
    if out is not None:
        ran.metadata[METADATA_KEY] = {**after.to_json(), "source": meta.get("source"),
                                      "release_path": str(Path(release).resolve()),
                                      "parameters": params}
        _write_atomic(ran, Path(out))
    return Report(str(published), runrecord.compare(before, after), seconds, str(release))

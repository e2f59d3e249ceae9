"""Run records: what a notebook or CLI run used and what it found, so a rerun can check it.

A record holds the release (id, content id, every table's and file's sha256, seed), the
environment (sha256 of ``env/requirements.lock``, Python, Java and Hail versions), the
cohort definitions by content hash, seeds, and the run's key results. A key result is a
number (compared within ``tolerance``, absolute), a string, a small JSON value or a small
table (a Polars frame, compared cell by cell, numbers within the tolerance).

In a notebook::

    from workbench import runrecord
    RELEASE = runrecord.release_path()        # $WORKBENCH_RELEASE, else releases/default
    cat = catalog.open(RELEASE)
    run = runrecord.start(cat)                # the release and the environment
    run.definition(htn)                       # a cohort definition, by hash
    runrecord.record("cases", 412)            # exact
    runrecord.record("odds_ratio", 0.83, tolerance=1e-6)

When the notebook runs through our runner (``workbench run-notebook``, ``workbench
rerun``), the runner sets ``$WORKBENCH_RUN_RECORD`` and every change is written to that
file; the runner stores it in the notebook's metadata under ``workbench``. ``workbench
gwas`` writes the same record as ``run_manifest.json`` next to its results.

:func:`compare` sets a rerun's record against the published one and lists the
differences, release first, then environment, then definitions, then results:

>>> rel = {"release_id": "r1", "content_id": "c1", "checksums": {"person": "aa"}}
>>> env = {"lock_sha256": "l1", "python": "3.11", "java": "17", "hail": "0.2.139"}
>>> a = RunRecord(release=rel, environment=env)
>>> _ = a.record("n", 100)
>>> _ = a.record("or", 1.25, tolerance=0.01)
>>> b = RunRecord.from_json(a.to_json())
>>> _ = b.record("or", 1.255, tolerance=0.01)
>>> compare(a, b)
[]
>>> _ = b.record("n", 101)
>>> [str(d) for d in compare(a, b)]
['result n: recorded 100, rerun 101']
>>> b.environment = {**env, "lock_sha256": "l2"}
>>> compare(a, b)[0].kind
'environment'
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import math
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workbench.errors import UsageError

ENV_RECORD = "WORKBENCH_RUN_RECORD"
ENV_RELEASE = "WORKBENCH_RELEASE"
ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "env" / "requirements.lock"
FORMAT = 1
MAX_TABLE_ROWS = 200

Kind = Literal["release", "environment", "definition", "result"]


def readable(path: Path | str) -> None:
    """Give a temp file (mkstemp: 0600) the mode a new file would get (umask applied)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def release_path(default: str = "releases/default") -> Path:
    """The release a notebook reads: ``$WORKBENCH_RELEASE``, else ``default`` under the
    working directory or one of its parents (a notebook opened from ``notebooks/`` finds
    the checkout's ``releases/default``), else ``default`` under this checkout."""
    if os.environ.get(ENV_RELEASE):
        return Path(os.environ[ENV_RELEASE])
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / default / "manifest.json").is_file():
            return d / default
    return ROOT / default


def lock_sha256(path: Path = LOCK) -> str | None:
    """sha256 of the locked requirements (None when the checkout has no lock file)."""
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def environment() -> dict[str, str | None]:
    """Lock hash, Python, Java (major version on PATH) and Hail (installed package)."""
    from workbench.doctor import java_version

    try:
        hail = md.version("hail")
    except md.PackageNotFoundError:
        hail = None
    return {"lock_sha256": lock_sha256(), "python": platform.python_version(),
            "java": java_version(), "hail": hail}


def release_identity(manifest: dict[str, Any]) -> dict[str, Any]:
    """Release id, content id, seed and the sha256 of every table and file."""
    from workbench.manifest import content_id

    sums = {f"table:{k}": v["sha256"] for k, v in sorted(manifest.get("tables", {}).items())}
    sums |= {f"file:{k}": v["sha256"] for k, v in sorted(manifest.get("files", {}).items())}
    return {"release_id": manifest.get("release_id"), "content_id": content_id(manifest),
            "seed": manifest.get("seed"), "checksums": sums}


@dataclass(frozen=True)
class Difference:
    """One way a rerun differs from the record: its kind, what, and how."""

    kind: Kind
    key: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} {self.key}: {self.detail}"


@dataclass
class RunRecord:
    """A run's manifest. Setters write through to ``path`` when it is set."""

    release: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    definitions: dict[str, str] = field(default_factory=dict)
    seeds: dict[str, Any] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    path: Path | None = None

    def definition(self, d: Any, name: str | None = None) -> str:
        """Record a cohort definition (anything with ``content_hash()``); returns the hash."""
        h = d.content_hash()
        self.definitions[name or getattr(d, "name", "definition")] = h
        self._save()
        return h

    def seed(self, name: str, value: int) -> int:
        """Record a random seed the run used; returns it, for ``rng = default_rng(...)``."""
        self.seeds[name] = value
        self._save()
        return value

    def record(self, key: str, value: Any, *, tolerance: float | None = None) -> Any:
        """Record a key result; returns ``value`` unchanged.

        Numbers compare within ``tolerance`` (absolute; default: exact for integers,
        1e-9 relative for floats); a Polars frame (at most 200 rows) cell by cell with the
        same rule for numeric cells; anything else must be JSON and compares equal.
        """
        if tolerance is not None and not tolerance >= 0:
            raise UsageError(f"record({key!r}): tolerance must be 0 or more, got {tolerance}")
        self.results[key] = {**_encode(key, value), "tolerance": tolerance}
        self._save()
        return value

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "release": self.release, "environment": self.environment,
                "definitions": self.definitions, "seeds": self.seeds, "results": self.results}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        if data.get("format") != FORMAT:
            raise UsageError(f"unknown run record format {data.get('format')!r}",
                             hint="it was written by another version of the workbench")
        return cls(release=dict(data["release"]), environment=dict(data["environment"]),
                   definitions=dict(data["definitions"]), seeds=dict(data["seeds"]),
                   results={k: dict(v) for k, v in data["results"].items()})

    def write(self, path: Path | str) -> Path:
        """Write as JSON atomically (temp file in the same folder, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(self.to_json(), f, indent=2, sort_keys=True, default=str)
            f.write("\n")
        readable(tmp)
        os.replace(tmp, path)
        return path

    def _save(self) -> None:
        if self.path is not None:
            self.write(self.path)


def read(path: Path | str) -> RunRecord:
    """A record written by :meth:`RunRecord.write`."""
    return RunRecord.from_json(json.loads(Path(path).read_text(encoding="utf-8")))


_current: RunRecord | None = None


def start(cat: Any = None, *, manifest: dict[str, Any] | None = None) -> RunRecord:
    """Begin this process's record: the release of ``cat`` (a catalog) or ``manifest``,
    and the environment. Written to ``$WORKBENCH_RUN_RECORD`` when that is set."""
    global _current
    if cat is not None:
        manifest = cat.manifest
    target = os.environ.get(ENV_RECORD)
    _current = RunRecord(release=release_identity(manifest or {}), environment=environment(),
                         path=Path(target) if target else None)
    _current._save()
    return _current


def current() -> RunRecord:
    """This process's record (:func:`start` it first)."""
    if _current is None:
        raise UsageError("no run record started",
                         hint="call workbench.runrecord.start(cat) after opening the release")
    return _current


def record(key: str, value: Any, *, tolerance: float | None = None) -> Any:
    """Record a key result in this process's record; returns ``value``."""
    return current().record(key, value, tolerance=tolerance)


def record_count(key: str, n: int, *, policy: Any = None) -> int | str:
    """Record a count of persons as it may leave: through the small-cell policy (a
    suppressed count is recorded as its text, ``"< 20"``); returns what was recorded.

    >>> _ = start(manifest={"release_id": "r1"})
    >>> record_count("cases", 7), record_count("persons", 450)
    ('< 20', 450)
    """
    from cohort.privacy import SmallCellPolicy

    policy = policy or SmallCellPolicy()
    cell = policy.count(int(n))
    return record(key, cell if isinstance(cell, int) else policy.format(cell))


def _encode(key: str, value: Any) -> dict[str, Any]:
    if hasattr(value, "to_dicts") and hasattr(value, "columns"):       # a Polars frame
        if value.height > MAX_TABLE_ROWS:
            raise UsageError(f"record({key!r}): a table of {value.height} rows is too big to "
                             f"record", hint=f"record at most {MAX_TABLE_ROWS} rows, e.g. "
                             "a summary or the top rows")
        return {"type": "table", "columns": list(value.columns),
                "rows": [[_plain(key, v) for v in row] for row in value.rows()]}
    return {"type": "value", "value": _plain(key, value)}


def _plain(key: str, v: Any) -> Any:
    """A JSON-able value: numpy scalars to Python, dates to ISO text; else refuse."""
    if hasattr(v, "item") and not isinstance(v, (list, dict, str)):
        v = v.item()
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, (list, tuple)):
        return [_plain(key, x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(key, x) for k, x in v.items()}
    if hasattr(v, "isoformat"):
        return v.isoformat()
    raise UsageError(f"record({key!r}): cannot record a {type(v).__name__}",
                     hint="record numbers, strings, lists, dicts or a small Polars frame")


def _close(a: Any, b: Any, tolerance: float | None) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if tolerance is not None:
            return abs(a - b) <= tolerance
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tolerance)
                                        for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tolerance) for k in a)
    return a == b


def _short(v: Any, width: int = 80) -> str:
    s = json.dumps(v, default=str)
    return s if len(s) <= width else s[:width - 3] + "..."


def _compare_result(key: str, was: dict[str, Any], now: dict[str, Any] | None
                    ) -> Difference | None:
    if now is None:
        return Difference("result", key, "recorded, but the rerun did not record it")
    tol = was.get("tolerance")
    within = "" if tol is None else f" (tolerance {tol})"
    if was["type"] != now["type"]:
        return Difference("result", key, f"recorded a {was['type']}, rerun a {now['type']}")
    if was["type"] == "value":
        if _close(was["value"], now["value"], tol):
            return None
        return Difference("result", key, f"recorded {_short(was['value'])}, rerun "
                                         f"{_short(now['value'])}{within}")
    if was["columns"] != now["columns"]:
        return Difference("result", key, f"columns were {was['columns']}, now {now['columns']}")
    if len(was["rows"]) != len(now["rows"]):
        return Difference("result", key, f"{len(was['rows'])} rows recorded, "
                                         f"{len(now['rows'])} in the rerun")
    for i, (r0, r1) in enumerate(zip(was["rows"], now["rows"], strict=True)):
        for col, a, b in zip(was["columns"], r0, r1, strict=True):
            if not _close(a, b, tol):
                return Difference("result", key, f"row {i}, column {col}: recorded "
                                                 f"{_short(a)}, rerun {_short(b)}{within}")
    return None


def compare(published: RunRecord, rerun: RunRecord) -> list[Difference]:
    """Every difference, in order: release, environment, definitions, results."""
    out: list[Difference] = []
    r0, r1 = published.release, rerun.release
    for k in ("release_id", "content_id"):
        if r0.get(k) != r1.get(k):
            out.append(Difference("release", k, f"recorded {r0.get(k)}, rerun {r1.get(k)}"))
    s0, s1 = r0.get("checksums", {}), r1.get("checksums", {})
    for k in sorted(s0.keys() | s1.keys()):
        if s0.get(k) != s1.get(k):
            out.append(Difference("release", k, f"sha256 recorded {str(s0.get(k))[:12]}, "
                                                f"rerun {str(s1.get(k))[:12]}"))
    e0, e1 = published.environment, rerun.environment
    for k in ("lock_sha256", "java", "hail", "python"):
        if e0.get(k) != e1.get(k):
            out.append(Difference("environment", k, f"recorded {e0.get(k)}, rerun {e1.get(k)}"))
    d0, d1 = published.definitions, rerun.definitions
    for k in sorted(d0.keys() | d1.keys()):
        if d0.get(k) != d1.get(k):
            out.append(Difference("definition", k, f"hash recorded {d0.get(k)}, "
                                                   f"rerun {d1.get(k)}"))
    if published.seeds != rerun.seeds:
        out.append(Difference("definition", "seeds", f"recorded {published.seeds}, "
                                                     f"rerun {rerun.seeds}"))
    for k, was in published.results.items():
        if (d := _compare_result(k, was, rerun.results.get(k))) is not None:
            out.append(d)
    for k in rerun.results.keys() - published.results.keys():
        out.append(Difference("result", k, "not recorded in the published run"))
    return out

"""Read FHIR JSON: NDJSON (one resource a line, as a bulk export writes) and Bundles.

A source is a file or a directory searched recursively (sorted, hidden files skipped) for
``*.ndjson`` and ``*.json`` files, optionally gzipped. Each resource comes with where it
was found: the file and the line (NDJSON, 1-based) or the Bundle entry (0-based). What
cannot be read (a truncated line, a file that is not JSON, an entry without a resource)
comes back as a problem at the same place, so the loader reports it and goes on.

>>> import tempfile, pathlib, json
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "Patient.ndjson").write_text('{"resourceType": "Patient", "id": "1"}\\n{"resou')
>>> [(str(w), r and r["id"], p and p[:22]) for w, r, p in read_source(d)]
[('Patient.ndjson, line 1', '1', None), ('Patient.ndjson, line 2', None, 'line is not valid JSON')]
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from workbench.errors import UsageError

SUFFIXES = (".ndjson", ".json", ".ndjson.gz", ".json.gz")


@dataclass(frozen=True, slots=True)
class Where:
    """Where a resource was found: file (relative to the source), line or entry."""

    file: str
    line: int | None = None
    entry: int | None = None
    full_url: str | None = None   # Bundle.entry.fullUrl: references may use it

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.file}, line {self.line}"
        if self.entry is not None:
            return f"{self.file}, entry {self.entry}"
        return self.file

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "entry": self.entry}


Item = tuple[Where, dict[str, Any] | None, str | None]   # (where, resource, problem)


def source_files(source: Path) -> tuple[list[Path], list[str]]:
    """The FHIR files of ``source`` (a file or a directory) and the other files ignored.

    Raises :class:`UsageError` if ``source`` does not exist or holds no FHIR file.
    """
    if not source.exists():
        raise UsageError(f"{source} does not exist",
                         hint="give an NDJSON or Bundle JSON file, or a directory of them")
    if source.is_file():
        return [source], []
    files, ignored = [], []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = path.relative_to(source)
        if any(part.startswith(".") for part in rel.parts):
            continue
        (files if path.name.lower().endswith(SUFFIXES) else ignored).append(path)
    if not files:
        raise UsageError(f"{source} holds no .ndjson or .json file",
                         hint="point at a FHIR bulk export (NDJSON) or a directory of Bundles")
    return files, [str(p.relative_to(source)) for p in ignored]


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _name(path: Path, root: Path) -> str:
    return path.name if root.is_file() or root == path else str(path.relative_to(root))


def read_source(source: Path | str) -> Iterator[Item]:
    """Every resource of every file of ``source``, in file order (see module docstring)."""
    source = Path(source)
    files, _ignored = source_files(source)
    for path in files:
        yield from read_file(path, _name(path, source))


def read_file(path: Path, name: str) -> Iterator[Item]:
    """The resources of one file: NDJSON by line, else a Bundle or a single resource.

    A ``.json`` file whose first non-blank line is a whole JSON object with a
    ``resourceType`` and more lines follow is read as NDJSON too (bulk exports are often
    named ``.json``).
    """
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError) as e:
        yield Where(name), None, f"cannot read the file ({e})"
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        yield Where(name), None, f"the file is not UTF-8 ({e.reason} at byte {e.start})"
        return
    if path.name.lower().endswith((".ndjson", ".ndjson.gz")) or _looks_ndjson(text):
        yield from _ndjson(text, name)
        return
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        yield (Where(name), None, f"the file is not valid JSON ({e.msg} at line {e.lineno}, "
               f"column {e.colno}); none of its resources were read")
        return
    if not isinstance(doc, dict):
        yield Where(name), None, "the file holds a JSON value that is not a FHIR resource"
        return
    if doc.get("resourceType") == "Bundle":
        yield from _bundle(doc, name)
    else:
        yield Where(name), doc, None


def _looks_ndjson(text: str) -> bool:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return False
    try:
        first = json.loads(lines[0])
    except json.JSONDecodeError:
        return False
    return isinstance(first, dict) and "resourceType" in first


def _ndjson(text: str, name: str) -> Iterator[Item]:
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = Where(name, line=i)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            yield where, None, f"line is not valid JSON ({e.msg} at column {e.colno}; " \
                               "truncated or two resources on one line?)"
            continue
        if not isinstance(obj, dict):
            yield where, None, f"line holds a JSON {type(obj).__name__}, not a resource object"
            continue
        yield where, obj, None


def _bundle(doc: dict[str, Any], name: str) -> Iterator[Item]:
    entries = doc.get("entry") or []
    if not isinstance(entries, list):
        yield Where(name), None, "Bundle.entry is not a list; none of its resources were read"
        return
    for i, entry in enumerate(entries):
        res = entry.get("resource") if isinstance(entry, dict) else None
        full = entry.get("fullUrl") if isinstance(entry, dict) else None
        where = Where(name, entry=i, full_url=full if isinstance(full, str) and full else None)
        if not isinstance(res, dict):
            yield where, None, "Bundle entry without a resource object"
            continue
        yield where, res, None

"""The audit trail: an append-only JSONL file, one record per action, hash-chained.

A record (one line, canonical JSON: sorted keys, no spaces, UTF-8) holds ``seq`` (its
line number, from 1), ``time`` (UTC, ISO 8601 with microseconds), ``user``, ``tier`` (the
effective tier), ``origin`` (how the session was set: explicit, environment, default),
``project``, ``action`` (``cohort.run``, ``cohort.members``, ``characterize.table1``,
``dataset.build``, ``genomics.link``, ``genomics.gwas``, ``export.members``,
``access.denied``...), ``definition`` (the definition's content hash), ``release`` (its
id), ``tables`` (read), ``sizes`` (counts only, each through the small-cell policy: an
int or ``"< 20"``; never a person id), ``detail`` (a few scalars: the file an export
wrote, the tier a refused call needed), ``pid``, ``prev`` (the previous record's
``hash``; 64 zeros for the first) and ``hash`` (sha256 of the record's canonical JSON
without ``hash``).

Writing (:func:`record`): the file is opened with ``O_APPEND``, locked with ``flock``
(so processes appending at once take turns), its last record read for ``seq`` and
``prev``, the line written with one ``write`` and ``fsync``'d; then ``<log>.head``
({"records": n, "hash": h}) is replaced (renamed into place; it may lag the log after a
machine crash, never lead it). A record that cannot be written raises
:class:`~workbench.errors.AuditError` and the action it records fails with it.

Where the log is: ``$WORKBENCH_AUDIT`` (a file, or a folder to hold ``audit.jsonl``); else
the session's project folder (``audit.jsonl`` next to ``project.toml``: the project's
trail for its reviewers); else ``$XDG_DATA_HOME/biobank-workbench/audit.jsonl``
(``~/.local/share/...``), the user's own trail.

:func:`verify` (``workbench audit verify``) re-derives every hash and link and names the
first bad line: an edited byte, a deleted, inserted or moved line, a cut-off end. Lines
deleted from the end are found through the head file (and through an ``anchor``: a
record hash noted elsewhere earlier). A chain is evidence, not a lock: whoever can write
the file can rewrite all of it; anchor the head outside the environment to catch that.

>>> import tempfile, pathlib
>>> log = pathlib.Path(tempfile.mkdtemp()) / "audit.jsonl"
>>> from workbench.access import Session
>>> with Session("kim", "registered"):
...     r1 = record("cohort.run", release={"release_id": "r1"}, sizes={"persons": 250},
...                 path=log)
...     r2 = record("characterize.table1", release={"release_id": "r1"}, path=log)
>>> r2["prev"] == r1["hash"], r2["seq"]
(True, 2)
>>> verify(log).ok
True
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import AuditError, UsageError

if TYPE_CHECKING:
    from workbench.access import Session
    from workbench.project import Project

ENV_AUDIT = "WORKBENCH_AUDIT"
FILE = "audit.jsonl"
GENESIS = "0" * 64
KEYS = frozenset({"seq", "time", "user", "tier", "origin", "project", "action", "definition",
                  "release", "tables", "sizes", "detail", "pid", "prev", "hash"})


def canonical(obj: Mapping[str, Any]) -> bytes:
    """The one byte form of a record: sorted keys, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest(rec: Mapping[str, Any]) -> str:
    """sha256 of the record's canonical form without its ``hash``."""
    return hashlib.sha256(canonical({k: v for k, v in rec.items() if k != "hash"})).hexdigest()


def head_path(log: Path) -> Path:
    return log.with_name(log.name + ".head")


def audit_path(session: Session | None = None, project: Project | None = None) -> Path:
    """Where the log is (see the module docstring)."""
    env = os.environ.get(ENV_AUDIT)
    if env:
        path = Path(env).expanduser()
        return path / FILE if path.is_dir() else path
    if project is None and session is not None:
        from workbench.access import project_of

        project = project_of(session)
    if project is not None and project.folder is not None:
        return project.folder / FILE
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "biobank-workbench" / FILE


def _scalars(what: str, values: Mapping[str, Any] | None, *, limit: int) -> dict[str, Any]:
    """Counts and short texts only: a list, a frame or a long text cannot be recorded."""
    out = {}
    for k, v in (values or {}).items():
        if v is not None and not isinstance(v, int | float | str | bool):
            raise UsageError(f"audit {what} {k!r} is a {type(v).__name__}; records hold "
                             "counts and short texts only")
        if isinstance(v, str) and len(v) > limit:
            raise UsageError(f"audit {what} {k!r} is {len(v)} characters (at most {limit})")
        out[str(k)] = v
    return out


def record(action: str, *, release: Mapping[str, Any] | str | None = None,
           definition: Any = None, tables: Iterable[str] = (),
           sizes: Mapping[str, int | str] | None = None,
           detail: Mapping[str, Any] | None = None, session: Session | None = None,
           tier: str | None = None, project: Project | None = None,
           path: Path | None = None) -> dict[str, Any]:
    """Append one record to the trail and return it (see the module docstring).

    ``release``: a manifest (or ``{"release_id", "kind"}``) or a release id; ``definition``:
    a definition (its ``content_hash()``) or a hash; ``sizes``: counts as they may leave
    (pass them through the small-cell policy first); ``session``/``tier``/``project``
    default to the current session, its effective tier and its project; ``path`` to
    :func:`audit_path`.
    """
    from workbench import access

    manifest = release if isinstance(release, Mapping) else None
    session = session or access.current(manifest)
    if project is None:
        project = access.project_of(session)
    rec: dict[str, Any] = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace(
            "+00:00", "Z"),
        "user": session.user, "tier": tier or access.effective_tier(session, project),
        "origin": session.origin, "project": project.name if project else None,
        "action": str(action),
        "definition": (definition.content_hash() if hasattr(definition, "content_hash")
                       else definition),
        "release": manifest.get("release_id") if manifest is not None else release,
        "tables": sorted(set(tables)), "sizes": _scalars("size", sizes, limit=32),
        "detail": _scalars("detail", detail, limit=500), "pid": os.getpid(),
    }
    return _append(path or audit_path(session, project), rec)


def _append(path: Path, rec: dict[str, Any]) -> dict[str, Any]:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as e:
        raise AuditError(f"the audit log {path} cannot be opened for appending "
                         f"({e.strerror})", hint=f"make it writable, or set ${ENV_AUDIT} to "
                         "a writable file; actions are refused while they cannot be "
                         "recorded") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        last = _last_line(fd, path)
        if last is None:
            rec["seq"], rec["prev"] = 1, GENESIS
        else:
            try:
                before = json.loads(last)
                rec["seq"], rec["prev"] = int(before["seq"]) + 1, str(before["hash"])
            except (ValueError, KeyError, TypeError) as e:
                raise AuditError(f"the last record of the audit log {path} is damaged",
                                 hint=f"run `workbench audit verify {path}`; the log must "
                                      "be repaired by its administrator") from e
        rec["hash"] = digest(rec)
        line = canonical(rec) + b"\n"
        if os.write(fd, line) != len(line):
            raise AuditError(f"the audit log {path}: a record was written only in part "
                             "(disk full?)")
        os.fsync(fd)
        _write_head(path, rec["seq"], rec["hash"], new=last is None)
    except OSError as e:
        raise AuditError(f"the audit log {path} cannot be written ({e.strerror})") from e
    finally:
        os.close(fd)     # releases the lock
    return rec


def _last_line(fd: int, path: Path) -> bytes | None:
    """The file's last line (without its newline), None for an empty file."""
    size = os.fstat(fd).st_size
    if size == 0:
        return None
    if os.pread(fd, 1, size - 1) != b"\n":
        raise AuditError(f"the audit log {path} ends in a partial record (a write was cut "
                         "off, or the file was truncated)",
                         hint=f"run `workbench audit verify {path}`; new records are refused "
                              "until the log is repaired by its administrator")
    end, chunk, buf = size - 1, 1 << 13, b""
    while True:
        start = max(0, end - chunk)
        buf = os.pread(fd, end - start, start) + buf
        cut = buf.rfind(b"\n")
        if cut >= 0:
            return buf[cut + 1:]
        if start == 0:
            return buf
        end, chunk = start, chunk * 2


def _write_head(path: Path, records: int, last: str, *, new: bool) -> None:
    """Replace the head file (not fsync'd: after a machine crash it may lag the log by the
    records written last, which verify accepts). A new log's directory entry is synced."""
    head, tmp = head_path(path), path.with_name(path.name + ".head.tmp")
    with open(tmp, "wb") as f:
        f.write(canonical({"records": records, "hash": last}) + b"\n")
    os.replace(tmp, head)
    if new:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# --- reading and verifying ----------------------------------------------------------------

@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found: ``ok``; else ``line`` (1-based, the first bad line) and
    ``problem``. ``records`` were read, ``head`` is the last good record's hash."""

    path: Path
    ok: bool
    records: int
    head: str
    line: int | None = None
    problem: str | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.path}: {self.records} records, chain intact, head {self.head}"
        return f"BAD: {self.path}: line {self.line}: {self.problem}"


def verify(path: Path | str, *, anchor: str | None = None,
           head_file: bool = True) -> Verdict:
    """Check every record's hash, form, number and link to the one before, then the head
    file (``head_file``: the log must still hold the record it names) and ``anchor`` (a
    record hash noted earlier, which must still be in the log)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read the audit log {path} ({e.strerror})") from e
    lines = data.split(b"\n")
    complete = lines[:-1]            # the text after the last newline is a cut-off line
    prev, n = GENESIS, 0

    def bad(line: int, problem: str) -> Verdict:
        return Verdict(path, False, n, prev, line, problem)

    hashes = []
    for n_line, raw in enumerate(complete, start=1):
        problem = _check_line(raw, n_line, prev)
        if problem:
            return bad(n_line, problem)
        prev = json.loads(raw)["hash"]
        hashes.append(prev)
        n = n_line
    if lines[-1]:
        return bad(len(complete) + 1, "incomplete record at the end (no newline): the file "
                   "was cut off or a write was interrupted")
    if head_file:
        problem = _check_head(head_path(path), hashes)
        if problem:
            return bad(*problem)
    if anchor is not None and anchor not in hashes:
        return bad(n + 1, f"the anchored record {anchor[:16]}... is not in the log: records "
                   "were deleted or the log was rewritten")
    return Verdict(path, True, n, prev)


def _check_line(raw: bytes, n: int, prev: str) -> str | None:
    if not raw.strip():
        return "empty line: a record was removed or the file edited"
    try:
        rec = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return "not a JSON record (edited or damaged)"
    if not isinstance(rec, dict) or set(rec) != KEYS:
        return "not an audit record (fields missing or added)"
    if canonical(rec) != raw:
        return "not in canonical form: the line was edited"
    if digest(rec) != rec["hash"]:
        return "its hash does not match its content: the record was edited"
    if rec["prev"] != prev:
        return (f"chain broken: prev {str(rec['prev'])[:16]}... is not the hash of line "
                f"{n - 1 if n > 1 else 'genesis'} ({prev[:16]}...): a record was inserted, "
                "deleted or moved here")
    if rec["seq"] != n:
        return f"record number {rec['seq']} on line {n}: records were inserted or deleted"
    return None


def _check_head(head: Path, hashes: list[str]) -> tuple[int, str] | None:
    if not head.exists():
        if not hashes:
            return None
        return (len(hashes) + 1, f"the head file {head.name} is missing, so records deleted "
                "from the end cannot be ruled out (check the chain alone with --no-head-file)")
    try:
        want = json.loads(head.read_bytes())
        count, last = int(want["records"]), str(want["hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return (len(hashes) + 1, f"the head file {head.name} is damaged")
    if count > len(hashes):
        return (len(hashes) + 1, f"missing: the head file says {count} records, the log "
                f"holds {len(hashes)}: records were deleted from the end")
    if count >= 1 and hashes[count - 1] != last:
        return (count, f"not the record the head file names ({last[:16]}...): the end of "
                "the log was replaced")
    return None


def read(path: Path | str) -> list[dict[str, Any]]:
    """The records of a log (lines that are not JSON records come back as
    ``{"seq": line, "damaged": text}``)."""
    out = []
    for k, raw in enumerate(Path(path).read_bytes().splitlines(), start=1):
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict):
                raise ValueError
        except (ValueError, UnicodeDecodeError):
            rec = {"seq": k, "damaged": raw[:200].decode(errors="replace")}
        out.append(rec)
    return out

"""Atomic writes: a file or a directory appears whole or not at all, even after ``kill -9``.

Every output is written to a temp path beside its target (same directory, so the rename
never crosses a file system), flushed to disk, then renamed over the target. A killed
writer leaves the previous good output and, at worst, a temp path that is never taken
for an output: temp names start with a dot, carry the writer's process id and end in
``.tmp`` (files) or hold ``.building-``/``.old-`` (directories), and
:func:`remove_dead_temps` deletes those of writers that no longer run.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "counts.json"
>>> _ = write_text(out, '{"persons": 120}\\n')
>>> out.read_text()
'{"persons": 120}\\n'
>>> with writing(out) as tmp:
...     _ = tmp.write_text("half")
...     raise RuntimeError("writer failed")   # the target keeps its old content
Traceback (most recent call last):
RuntimeError: writer failed
>>> out.read_text(), sorted(p.name for p in out.parent.iterdir())
('{"persons": 120}\\n', ['counts.json'])
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["fsync_dir", "fsync_tree", "pid_alive", "recover_dir", "remove_dead_temps",
           "replace_dir", "temp_name", "write_bytes", "write_text", "writing"]


def temp_name(target: Path, tag: str = "") -> str:
    """The name prefix of a temp path for ``target``: hidden, with this process's id.

    >>> temp_name(Path("/x/members.parquet")).startswith(".members.parquet.")
    True
    """
    return f".{target.name}.{tag}{os.getpid()}-"


def pid_alive(pid: int) -> bool:
    """True when a process with this id runs (or exists under another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (a rename in it) to disk; a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush a file, or every file and directory under ``root``, to disk (before renaming
    it in)."""
    if root.is_file():
        _fsync_file(root)
        return
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            _fsync_file(os.path.join(dirpath, name))
        fsync_dir(Path(dirpath))


def _readable(path: Path | str) -> None:
    """Give a temp file (mkstemp: 0600) the mode a new file gets (umask applied)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


@contextlib.contextmanager
def writing(target: Path | str) -> Iterator[Path]:
    """A temp path beside ``target`` to write to; on success it is flushed and renamed
    over ``target``, on any exception removed (``target`` unchanged). Temp files that
    killed writers of ``target`` left are deleted first."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(target)   # what writers killed before this one left
    fd, name = tempfile.mkstemp(prefix=temp_name(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        _readable(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def write_bytes(target: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically; returns ``target``."""
    with writing(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: Path | str, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``target`` atomically; returns ``target``."""
    return write_bytes(target, text.encode(encoding))


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the
    system or the file system cannot."""
    try:
        fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    except OSError:   # pragma: no cover - no C library to load (not Linux)
        return False
    if fn is None:
        return False
    at_fdcwd = -100
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def replace_dir(new: Path, target: Path) -> None:
    """Put the directory ``new`` at ``target``, replacing what is there, atomically.

    With a previous ``target`` the two are exchanged in one step where the system can
    (Linux), so ``target`` is never absent, then the old one is deleted. Elsewhere the
    old one is first renamed to ``.<name>.old-<pid>-``; a writer killed between the two
    renames leaves it there, and :func:`recover_dir` puts it back.
    """
    fsync_tree(new)
    if not target.exists():
        new.rename(target)
        fsync_dir(target.parent)
        return
    if _exchange(new, target):
        fsync_dir(target.parent)
        shutil.rmtree(new, ignore_errors=True)   # now the old content
        return
    old = target.parent / f"{temp_name(target, 'old-')}{os.urandom(3).hex()}"
    target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        if not target.exists():
            old.rename(target)
        raise
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(target: Path) -> None:
    """After a writer of ``target`` was killed: put a previous ``target`` that was moved
    aside back in place (when ``target`` is missing), and delete the dead writers' temp
    directories (see :func:`replace_dir`)."""
    for old in sorted(target.parent.glob(f".{target.name}.old-*")):
        if _owner_alive(old, target, "old-"):
            continue
        if not target.exists():
            old.rename(target)
        else:
            shutil.rmtree(old, ignore_errors=True)
    remove_dead_temps(target, tags=("building-", "writing-", ""))


def _owner_alive(path: Path, target: Path, tag: str) -> bool:
    pid = path.name.removeprefix(f".{target.name}.{tag}").split("-")[0].split(".")[0]
    return pid.isdigit() and pid_alive(int(pid))


def remove_dead_temps(target: Path, tags: tuple[str, ...] = ("",)) -> list[Path]:
    """Delete temp paths of ``target`` (``.<name>.<tag><pid>-...``) whose writer is dead;
    the paths removed."""
    removed = []
    for tag in tags:
        for stale in target.parent.glob(f".{target.name}.{tag}*"):
            rest = stale.name.removeprefix(f".{target.name}.{tag}")
            pid = rest.split("-")[0]
            if not pid.isdigit() or pid_alive(int(pid)):
                continue
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed

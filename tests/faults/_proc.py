"""Subprocesses for the fault tests: start one in its own process group, SIGKILL it."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def start(args: Sequence[str], **kw) -> subprocess.Popen:
    """``python args...`` in a new session (its JVM, if any, in the same group)."""
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def run(args: Sequence[str], timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                         timeout=timeout, **kw)
    assert out.returncode == 0, f"{args} failed ({out.returncode}):\n{out.stderr[-3000:]}"
    return out


def script(code: str, *args: str) -> list[str]:
    return ["-c", code, *args]


def kill(proc: subprocess.Popen) -> bool:
    """SIGKILL the process group (no cleanup code runs); True if it was still running."""
    alive = proc.poll() is None
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    return alive


def kill_after(proc: subprocess.Popen, seconds: float,
               ready: Callable[[], bool] | None = None, timeout: float = 120) -> bool:
    """Wait until ``ready()`` (if given), then ``seconds`` more, then SIGKILL. True if
    the process was killed while running (not already finished)."""
    deadline = time.monotonic() + timeout
    while ready is not None and not ready() and proc.poll() is None:
        if time.monotonic() > deadline:
            raise AssertionError("the subprocess never reached the kill window")
        time.sleep(0.02)
    end = time.monotonic() + seconds
    while time.monotonic() < end and proc.poll() is None:
        time.sleep(0.01)
    return kill(proc)


def self_kill_code() -> str:
    """Python source defining ``die()``: SIGKILL this very process (as ``kill -9``)."""
    return "import os, signal\ndef die():\n    os.kill(os.getpid(), signal.SIGKILL)\n"


def digest(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (or of ``root``), by relative path."""
    if root.is_file():
        return {root.name: hashlib.sha256(root.read_bytes()).hexdigest()}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def hidden(parent: Path, name: str) -> list[str]:
    """Temp paths a writer of ``parent/name`` may leave beside it."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))

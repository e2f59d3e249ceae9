"""Start a throwaway PostgreSQL server for tests (Debian's postgresql, trust auth, loopback)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def initdb_path() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return found[-1] if found else shutil.which("initdb")


def start_postgres() -> tuple[str, callable]:
    """Start a server in a fresh directory; return (dsn, stop)."""
    bindir = Path(initdb_path()).parent
    base = Path(tempfile.mkdtemp(prefix="wb-pg-"))
    base.chmod(0o755)              # postgres must reach it when we run as root
    data, log = base / "data", base / "server.log"
    as_pg: list[str] = []
    if os.geteuid() == 0:          # the server refuses to run as root
        as_pg = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    subprocess.run([*as_pg, str(bindir / "initdb"), "-D", str(data), "--auth=trust",
                    "-U", "postgres", "-E", "UTF8", "--no-locale"], check=True,
                   capture_output=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    opts = (f"-p {port} -k {base} -h 127.0.0.1 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c shared_buffers=512MB -c work_mem=64MB")
    subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log),
                    "-w", "start"], check=True, capture_output=True)

    def stop() -> None:
        subprocess.run([*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)

    return f"host=127.0.0.1 port={port} user=postgres dbname=postgres", stop

"""A release's manifest.json: identity, tables with row counts and checksums, planted truth.

>>> m = {"release_id": "r1", "tables": {}, "files": {}}
>>> content_id(m) == content_id(dict(m))
True
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from workbench.errors import UsageError

MANIFEST = "manifest.json"


def sha256_file(path: Path, bufsize: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(bufsize):
            h.update(block)
    return h.hexdigest()


def content_id(manifest: dict[str, Any]) -> str:
    """A short id of what a release holds: its files' checksums and its truth, not its date."""
    parts = {
        "tables": {k: v["sha256"] for k, v in sorted(manifest.get("tables", {}).items())},
        "files": {k: v["sha256"] for k, v in sorted(manifest.get("files", {}).items())},
        "truth": manifest.get("truth"),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def created_timestamp() -> str:
    """UTC build time, or SOURCE_DATE_EPOCH when set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch and not epoch.isdigit():
        raise UsageError(f"SOURCE_DATE_EPOCH must be whole seconds since 1970, got {epoch!r}")
    when = (dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch
            else dt.datetime.now(dt.UTC).replace(microsecond=0))
    return when.isoformat().replace("+00:00", "Z")


def write_manifest(release_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write manifest.json atomically (temp file, then rename)."""
    path = release_dir / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_manifest(release_dir: Path) -> dict[str, Any]:
    """Parse manifest.json; errors are the caller's to wrap."""
    return json.loads((release_dir / MANIFEST).read_text(encoding="utf-8"))

"""An independent reader for the synthetic VCF (diploid GT only), for ground-truth tests.

Written apart from the generator: it parses the text the way any VCF consumer would.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def read_gt(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(variant ids 'chrom:pos:ref:alt', sample ids, genotypes int8 V x M with -1 missing)."""
    ids, rows, samples = [], [], None
    with gzip.open(path, "rb") as f:
        for line in f:
            if line.startswith(b"##"):
                continue
            if line.startswith(b"#CHROM"):
                samples = np.array([s.decode() for s in line.rstrip(b"\n").split(b"\t")[9:]])
                continue
            fields = line.split(b"\t", 9)
            assert fields[8] == b"GT", fields[8]
            ids.append(b":".join([fields[0], fields[1], fields[3], fields[4]]).decode())
            # every call is 'a/b' (3 bytes) plus a separator: view as an M x 4 byte matrix
            calls = np.frombuffer(fields[9], np.uint8).reshape(len(samples), 4)
            assert (calls[:, 1] == ord("/")).all(), "expected unphased diploid calls"
            g = (calls[:, 0] == ord("1")).astype(np.int8) + (calls[:, 2] == ord("1"))
            g[calls[:, 0] == ord(".")] = -1
            rows.append(g)
    return np.array(ids), samples, np.vstack(rows)

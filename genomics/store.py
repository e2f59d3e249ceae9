"""Genotypes in: VCF (bgzip) or PLINK bed/bim/fam -> a Hail MatrixTable, cached by content.

A MatrixTable is written once per (input checksums, import parameters, store version)
under ``$WORKBENCH_CACHE/genomics`` and read back on every later run: importing text VCF
is the slow part of any Hail pipeline. The write goes to a temp directory renamed into
place, so a killed import never leaves a half-written MatrixTable that looks complete.

Only the genotype call (GT) is kept as an entry field; GWAS and QC need nothing else, and
fewer entry fields mean smaller, faster MatrixTables.

>>> key = cache_key([("vcf", "ab12")], {"reference": "GRCh38", "partitions": 8})
>>> len(key)
20
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.catalog import Catalog, cache_dir
from workbench.errors import UsageError
from workbench.manifest import sha256_file
from workbench.schema import GENOTYPE_VCF

if TYPE_CHECKING:
    import hail as hl

STORE_VERSION = "1"


class PlainGzipWarning(UserWarning):
    """A VCF compressed with plain gzip: Hail can only read it on one core."""


def cache_key(inputs: list[tuple[str, str]], params: dict[str, Any]) -> str:
    """Key of a cached MatrixTable: input checksums, import parameters, versions."""
    import importlib.metadata as md

    try:
        hail_version = md.version("hail")
    except md.PackageNotFoundError:   # pragma: no cover - hail is a dependency
        hail_version = "?"
    blob = json.dumps({"inputs": inputs, "params": params, "store": STORE_VERSION,
                       "hail": hail_version}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def is_bgzf(path: Path) -> bool:
    """True for a BGZF (bgzip) file: gzip with the 'BC' extra subfield."""
    with open(path, "rb") as f:
        head = f.read(16)
    return len(head) >= 14 and head[:4] == b"\x1f\x8b\x08\x04" and head[12:14] == b"BC"


def default_partitions(size_bytes: int, cores: int) -> int:
    """Enough partitions to keep every core busy, ~16 MB of compressed VCF each.

    >>> default_partitions(19_000_000, 2)
    8
    """
    return max(4 * cores, -(-size_bytes // (16 * 2**20)))


def import_vcf(path: Path | str, *, checksum: str | None = None, reference: str = "GRCh38",
               partitions: int | None = None, refresh: bool = False) -> hl.MatrixTable:
    """The VCF as a MatrixTable (rows: locus, alleles; cols: s; entries: GT), cached.

    ``checksum``: the file's sha256 when already known (a release manifest records it);
    otherwise it is computed. Plain-gzip VCFs are accepted with a warning (one core).
    """
    from genomics.session import init

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"VCF {path} does not exist")
    session = init()
    gz = path.suffix in (".gz", ".bgz")
    bgz = gz and is_bgzf(path)
    if gz and not bgz:
        warnings.warn(f"{path} is plain gzip, not bgzip: Hail reads it on ONE core. "
                      "Recompress with `bgzip` (htslib) for a parallel import.",
                      PlainGzipWarning, stacklevel=2)
    partitions = partitions or default_partitions(path.stat().st_size, session.cores)
    params = {"kind": "vcf", "reference": reference, "partitions": partitions if bgz else 1}
    key = cache_key([("vcf", checksum or sha256_file(path))], params)

    def build() -> hl.MatrixTable:
        import hail as hl

        mt = hl.import_vcf(str(path), reference_genome=reference, force_bgz=bgz,
                           force=gz and not bgz, min_partitions=partitions if bgz else None,
                           call_fields=["GT"], entry_float_type=hl.tfloat32)
        return mt.select_entries("GT")

    return _cached(key, build, describe={"source": str(path), **params}, refresh=refresh)


def import_plink(bed: Path | str, *, reference: str = "GRCh38", partitions: int | None = None,
                 refresh: bool = False) -> hl.MatrixTable:
    """PLINK 1 binary files (``x.bed`` with ``x.bim`` and ``x.fam`` beside it), cached.

    Samples are keyed by IID as ``s``; alleles are [A2, A1] as Hail reads them (A1 counted).
    """
    from genomics.session import init

    bed = Path(bed)
    files = [bed, bed.with_suffix(".bim"), bed.with_suffix(".fam")]
    for f in files:
        if not f.is_file():
            raise UsageError(f"PLINK file {f} does not exist",
                             hint="give the .bed path; .bim and .fam must lie beside it")
    session = init()
    partitions = partitions or default_partitions(bed.stat().st_size, session.cores)
    params = {"kind": "plink", "reference": reference, "partitions": partitions}
    key = cache_key([(f.suffix, sha256_file(f)) for f in files], params)

    def build() -> hl.MatrixTable:
        import hail as hl

        mt = hl.import_plink(str(bed), str(files[1]), str(files[2]),
                             reference_genome=reference, min_partitions=partitions,
                             contig_recoding=_plink_contigs(reference))
        return mt.select_entries("GT").select_cols().select_rows()

    return _cached(key, build, describe={"source": str(bed), **params}, refresh=refresh)


def release_genotypes(cat: Catalog, *, partitions: int | None = None,
                      refresh: bool = False) -> hl.MatrixTable:
    """The release's VCF as a cached MatrixTable (its checksum comes from the manifest)."""
    vcf = cat.file(GENOTYPE_VCF)
    reference = (cat.manifest.get("truth") or {}).get("genome_build", "GRCh38")
    return import_vcf(vcf, checksum=cat.manifest["files"][GENOTYPE_VCF]["sha256"],
                      reference=reference, partitions=partitions, refresh=refresh)


def store_dir() -> Path:
    path = cache_dir() / "genomics"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached(key: str, build, *, describe: dict[str, Any], refresh: bool) -> hl.MatrixTable:
    import hail as hl

    final = store_dir() / f"{key}.mt"
    if refresh and final.exists():
        shutil.rmtree(final)
    if not (final / "_SUCCESS").exists():
        tmp = store_dir() / f".{key}.{os.getpid()}.writing.mt"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            build().write(str(tmp), overwrite=True)
            (tmp / "workbench.json").write_text(json.dumps(describe, indent=2))
            if final.exists():       # a stale, incomplete one
                shutil.rmtree(final)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return hl.read_matrix_table(str(final))


def _plink_contigs(reference: str) -> dict[str, str] | None:
    if reference != "GRCh38":
        return None
    names = [str(i) for i in range(1, 23)] + ["X", "Y", "MT"]
    return {n: ("chrM" if n == "MT" else f"chr{n}") for n in names} | {
        "23": "chrX", "24": "chrY", "26": "chrM"}

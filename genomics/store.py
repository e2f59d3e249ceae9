"""Genotypes in: VCF (bgzip) or PLINK bed/bim/fam -> a Hail MatrixTable, cached by content.

A MatrixTable is written once per (input checksums, import parameters, store version)
under ``$WORKBENCH_CACHE/genomics`` and read back on every later run: importing text VCF
is the slow part of any Hail pipeline. The write goes to a temp directory renamed into
place, so a killed import never leaves a half-written MatrixTable that looks complete;
a killed ``refresh`` keeps the previous one, and the next import deletes the dead one's
temp directory. Two processes importing the same file at once both get a whole one.

Only the genotype call (GT) is kept as an entry field; GWAS and QC need nothing else, and
fewer entry fields mean smaller, faster MatrixTables.

Bad input gets a message, not a JVM stack trace: before an import the file is pre-checked
(:mod:`genomics.vcf_check`: header, first lines, truncation), and an error Hail raises
while importing (a bad line deeper in the file) becomes a
:class:`~workbench.errors.GenotypeInputError` naming the file, Hail's own one-line summary
and the offending line; Hail's exception stays attached as ``__cause__``.

>>> key = cache_key([("vcf", "ab12")], {"reference": "GRCh38", "partitions": 8})
>>> len(key)
20
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genomics.vcf_check import check_plink, check_vcf, is_bgzf
from workbench.atomic import fsync_tree, recover_dir, replace_dir, temp_name
from workbench.catalog import Catalog, cache_dir
from workbench.errors import GenotypeInputError, UsageError
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


__all__ = ["cache_key", "default_partitions", "import_plink", "import_vcf", "is_bgzf",
           "release_genotypes", "store_dir"]


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
    check_vcf(path, reference=reference)     # before the JVM starts: a bad file fails fast
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

    return _cached(key, build, describe={"source": str(path), **params}, refresh=refresh,
                   source=path)


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
    check_plink(bed)                         # before the JVM starts
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

    return _cached(key, build, describe={"source": str(bed), **params}, refresh=refresh,
                   source=bed)


def release_genotypes(cat: Catalog, *, partitions: int | None = None,
                      refresh: bool = False) -> hl.MatrixTable:
    """The release's VCF as a cached MatrixTable (its checksum comes from the manifest).
    Row-level genotypes: the controlled tier only (:mod:`workbench.access`)."""
    from workbench.access import require

    require("controlled", "the release's genotypes (row-level)", catalog=cat)
    vcf = cat.file(GENOTYPE_VCF)
    reference = (cat.manifest.get("truth") or {}).get("genome_build", "GRCh38")
    return import_vcf(vcf, checksum=cat.manifest["files"][GENOTYPE_VCF]["sha256"],
                      reference=reference, partitions=partitions, refresh=refresh)


def store_dir() -> Path:
    path = cache_dir() / "genomics"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _cached(key: str, build, *, describe: dict[str, Any], refresh: bool,
            source: Path | None = None) -> hl.MatrixTable:
    """Read the cached MatrixTable, or build, write and rename it (the caller pre-checked
    the input before starting the JVM)."""
    import hail as hl

    final = store_dir() / f"{key}.mt"
    recover_dir(final)       # what imports killed before this one left
    if refresh or not _complete(final):
        tmp = store_dir() / f"{temp_name(final)}writing.mt"
        try:
            try:
                build().write(str(tmp), overwrite=True)
            except _hail_errors() as e:
                raise hail_import_error(e, source) from e
            (tmp / "workbench.json").write_text(json.dumps(describe, indent=2))
            _put_in_place(tmp, final, replace=refresh)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return hl.read_matrix_table(str(final))


def _complete(mt: Path) -> bool:
    """A MatrixTable directory that Hail finished writing and this store finished moving
    in (a partial one lacks Hail's ``_SUCCESS`` or the store's ``workbench.json``)."""
    return (mt / "_SUCCESS").is_file() and (mt / "workbench.json").is_file()


def _put_in_place(tmp: Path, final: Path, *, replace: bool) -> None:
    """Rename the written MatrixTable to ``final``. An incomplete ``final`` (or any, with
    ``replace``) is exchanged for it; a complete one that another process put there in
    the meantime is kept (it may be in use), and ours is dropped."""
    if final.exists() and (replace or not _complete(final)):
        replace_dir(tmp, final)
        return
    try:
        fsync_tree(tmp)
        os.rename(tmp, final)
    except OSError:
        if not _complete(final):     # not the race with another import: a real failure
            raise


def _hail_errors() -> tuple[type[BaseException], ...]:
    from hail.utils.java import FatalError, HailUserError
    from py4j.protocol import Py4JError

    return FatalError, HailUserError, Py4JError


def hail_import_error(err: BaseException, source: Path | None) -> GenotypeInputError:
    """Hail's failure while importing ``source`` as one GenotypeInputError: the file, Hail's
    one-line summary and, when Hail names it, the offending line (cut to 120 characters).

    >>> e = Exception("NumberFormatException: x\\n\\nJava stack trace:\\nis.hail.utils."
    ...               "HailException: file:/d/x.vcf:offset 89: error while parsing line\\n"
    ...               "chr1\\t26\\t.\\tA\\tC\\tabc\\n\\tat is.hail...\\n"
    ...               "Error summary: NumberFormatException: For input string: \\"abc\\"")
    >>> msg = hail_import_error(e, Path("/d/x.vcf")).message
    >>> print(msg.replace("; ", ";\\n"))
    Hail could not import x.vcf: NumberFormatException: For input string: "abc";
    offending line (offset 89): chr1 26 . A C abc
    """
    text = str(err)
    summaries = re.findall(r"^Error summary: (.+)$", text, flags=re.M)
    if summaries:
        summary = summaries[-1].strip()
    else:
        lines = [ln.strip().lstrip(": ").strip() for ln in text.splitlines()]
        lines = [ln for ln in lines if ln and not ln.startswith(("An error occurred", "at "))]
        summary = lines[0] if lines else type(err).__name__
    message = f"Hail could not import {source.name if source else 'the input'}: {summary}"
    bad = re.search(r"(?:offset (\d+): )?error while parsing line\n(.*)", text)
    if bad:
        where = f" (offset {bad.group(1)})" if bad.group(1) else ""
        message += f"; offending line{where}: {' '.join(bad.group(2).split())[:120]}"
    from genomics.session import current

    log = current().log if current() is not None else None
    return GenotypeInputError(
        message, hint=f"the pre-check read only the first lines of {source or 'the input'}; "
                      "fix or remove the offending line (or re-export the file)"
                      + (f"; Hail's log: {log}" if log else ""))


def _plink_contigs(reference: str) -> dict[str, str] | None:
    if reference != "GRCh38":
        return None
    names = [str(i) for i in range(1, 23)] + ["X", "Y", "MT"]
    return {n: ("chrM" if n == "MT" else f"chr{n}") for n in names} | {
        "23": "chrX", "24": "chrY", "26": "chrM"}

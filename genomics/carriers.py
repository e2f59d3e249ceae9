"""The carrier table: every non-reference genotype call of a release, for cohort criteria.

``build_carriers(cat)`` reads the release's cached MatrixTable
(:func:`genomics.store.release_genotypes`), keeps the calls with at least one alternate
allele and writes them to one Parquet file in the workbench cache, where
:func:`workbench.catalog.open` finds it and makes the view ``genotype_carrier`` that
cohort genotype criteria (``GenotypeCriterion``) read: counting carriers then needs no
JVM. Built once per release (the key is the VCF's checksum); the write goes to a temp file
renamed into place, so a killed build leaves no half-written table.

Notes
-----
One row per (sample, variant, alternate allele) with a non-reference call:

- ``sample_id``: the VCF sample (link to persons through ``sample_link``);
- ``contig``: normalised like cohort variants (``chr1``..``chr22``, ``chrX``, ``chrY``,
  ``chrM``, whatever the VCF's style); ``position``: 1-based (int32);
- ``ref``, ``alt``: the alleles (a multi-allelic site gives one row per alt allele
  carried);
- ``n_alt`` (int8): copies of ``alt`` in the call, 1 or 2 (a haploid call has at most 1).

Homozygous-reference and missing calls are left out. Rows are sorted by contig, position,
ref, alt, sample_id. Nothing here filters on consent: the cohort compiler restricts to
persons with genomic consent who have not withdrawn, at query time.

Built through Spark (``Table.to_spark``) on the Hail session, so the cache directory must
be on a file system the driver and every worker share (it is, on ``local[n]``).

>>> carriers_ht.__name__, carrier_path.__name__
('carriers_ht', 'carrier_path')
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from cohort.model import normalise_contig
from workbench.atomic import fsync_tree, remove_dead_temps, temp_name
from workbench.catalog import Catalog, carrier_table_path
from workbench.errors import ReleaseError

if TYPE_CHECKING:
    import hail as hl

SORT = ("contig", "position", "ref", "alt", "sample_id")


def carrier_path(cat: Catalog) -> Path:
    """Where the release's carrier table is (or will be, once built); no Hail needed.

    Raises ReleaseError for a release without genotypes.
    """
    path = carrier_table_path(cat.manifest)
    if path is None:
        raise ReleaseError(f"release {cat.path} has no genotypes (no VCF), so no carriers",
                           hint="use a release built with genotyped persons")
    return path


def carriers_ht(mt: hl.MatrixTable) -> hl.Table:
    """The non-reference calls of a MatrixTable with a ``GT`` entry, one row per (sample,
    variant, alt allele carried): fields ``sample_id, contig, position, ref, alt, n_alt``
    (contig as the VCF names it), unkeyed."""
    import hail as hl

    mt = mt.filter_entries(hl.is_defined(mt.GT) & mt.GT.is_non_ref())
    et = mt.entries()
    n = hl.len(et.alleles)
    counts = et.GT.one_hot_alleles(n)
    et = et.annotate(carried=hl.range(1, n).map(
        lambda i: hl.struct(alt=et.alleles[i], n_alt=counts[i])).filter(
        lambda a: a.n_alt > 0))
    et = et.explode("carried").key_by()
    return et.select(sample_id=et.s, contig=et.locus.contig,
                              position=et.locus.position, ref=et.alleles[0],
                              alt=et.carried.alt, n_alt=et.carried.n_alt)


def build_carriers(cat: Catalog, *, refresh: bool = False,
                   progress: Callable[[str], None] | None = None) -> Path:
    """Build the release's carrier table (see the module docstring) unless it exists;
    its path. ``refresh`` rebuilds it."""
    path = carrier_path(cat)
    if path.is_file() and not refresh:
        return path
    from genomics.store import release_genotypes

    say = progress or (lambda msg: None)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(path)    # what builds killed before this one left
    stem = temp_name(path)
    parts, tmp = path.with_name(stem + "spark"), path.with_name(stem + "tmp.parquet")
    t0 = time.perf_counter()
    try:
        mt = release_genotypes(cat)
        say(f"carrier calls from {mt.count_cols():,} samples ...")
        contigs = mt.locus.dtype.reference_genome.contigs
        carriers_ht(mt).to_spark().write.parquet(parts.as_uri())
        files = sorted(parts.glob("part-*.parquet"))
        frame = pl.scan_parquet(files) if files else pl.LazyFrame(schema={
            "sample_id": pl.String, "contig": pl.String, "position": pl.Int32,
            "ref": pl.String, "alt": pl.String, "n_alt": pl.Int8})
        (frame.with_columns(pl.col("contig").replace({c: normalise_contig(c) for c in contigs}),
                            pl.col("position").cast(pl.Int32), pl.col("n_alt").cast(pl.Int8))
         .select("sample_id", "contig", "position", "ref", "alt", "n_alt")
         .sort(*SORT).sink_parquet(tmp))
        fsync_tree(tmp)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
        tmp.unlink(missing_ok=True)
    say(f"carrier table written in {time.perf_counter() - t0:.1f} s: {path}")
    return path

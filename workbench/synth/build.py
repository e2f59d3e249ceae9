"""Build a synthetic national release: deterministic, streamed in chunks, written atomically.

Same arguments give byte-identical Parquet files, VCF and manifest checksums: every random
stream is seeded from (seed, purpose[, chunk]) and chunks have a fixed size, so nothing
depends on timing or machine. The release is built in a hidden temp directory beside the
target and renamed into place at the end; a killed build leaves the previous state.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "rel"
>>> m = build_release(out, persons=300, genotyped=60, variants=400, seed=1, progress=False)
>>> m["tables"]["person"]["rows"]
300
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.stats import ncx2
from tqdm import tqdm

import workbench
from workbench.atomic import recover_dir, replace_dir
from workbench.errors import UsageError
from workbench.manifest import content_id, created_timestamp, sha256_file, write_manifest
from workbench.release_io import cluster_file
from workbench.schema import (
    CLUSTER_BY,
    GENOTYPE_INDEX,
    GENOTYPE_VCF,
    SCHEMA_VERSION,
    TABLES,
    table_file,
)
from workbench.synth import clinical, genotypes, governance, lifelog, public
from workbench.synth.diseases import simulate
from workbench.synth.population import Population, make_population
from workbench.synth.vocabulary import vocabulary_tables

CHUNK = 50_000
DEFAULTS = {"persons": 20_000, "genotyped": 5_000, "variants": 20_000, "seed": 42}
_STREAM = {"population": 1, "genotyped": 2, "layout": 3, "genotypes": 4, "effects": 5,
           "scores": 6, "regions": 7, "chunk": 1000, "lifelog": 100_000}
ROW_GROUP = 1 << 20


def _rng(seed: int, purpose: str, k: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, _STREAM[purpose] + k])


def validate_arguments(out: Path, persons: int, genotyped: int, variants: int, seed: int,
                       force: bool, lifelog_days: int | None = None,
                       wearers: float | None = None) -> None:
    """Raise UsageError (one line each) for arguments a build cannot take."""
    if lifelog_days is not None and not 1 <= lifelog_days <= 3650:
        raise UsageError(f"--lifelog-days must be 1..3650, got {lifelog_days}")
    if wearers is not None and lifelog_days is None:
        raise UsageError("--wearers needs --lifelog-days (it sets the dense lifelog's wearers)")
    if wearers is not None and not 0 < wearers <= 1:
        raise UsageError(f"--wearers must be a fraction in (0, 1], got {wearers}")
    if persons < 100:
        raise UsageError(f"--persons must be at least 100, got {persons}")
    if genotyped < 0:
        raise UsageError(f"--genotyped must not be negative, got {genotyped}")
    if genotyped > persons:
        raise UsageError(f"--genotyped ({genotyped}) cannot exceed --persons ({persons})")
    if genotyped and genotyped < 50:
        raise UsageError(f"--genotyped must be 0 or at least 50, got {genotyped}")
    if variants < 200 and genotyped:
        raise UsageError(f"--variants must be at least 200, got {variants}")
    if seed < 0:
        raise UsageError(f"--seed must not be negative, got {seed}")
    created_timestamp()   # a bad SOURCE_DATE_EPOCH fails before any work
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise UsageError(f"--out {out} exists and is not empty; pass --force to replace it")
        if not (out / "manifest.json").is_file():
            raise UsageError(f"--out {out} is not empty and is not a release; --force only "
                             "replaces a release (choose an empty or new directory)")
    parent = out.parent if out.parent != Path("") else Path(".")
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK):
        raise UsageError(f"--out {out}: directory {probe} is not writable")


class _Writers:
    """One ParquetWriter per table, opened on first write; rows counted."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows: dict[str, int] = {}
        self.pending: dict[str, list[pa.Table]] = {}

    def write_grouped(self, name: str, table: pa.Table) -> None:
        """Write rows in full row groups of ROW_GROUP rows, whatever the pieces' sizes
        (the rest waits for the next piece or close)."""
        parts = self.pending.setdefault(name, [])
        parts.append(table)
        held = sum(p.num_rows for p in parts)
        if held < ROW_GROUP:
            return
        whole = pa.concat_tables(parts)
        full = held - held % ROW_GROUP
        self.write(name, whole.slice(0, full))
        self.pending[name] = [whole.slice(full)] if full < held else []

    def write(self, name: str, table: pa.Table) -> None:
        if name not in self.writers:
            path = self.root / table_file(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.writers[name] = pq.ParquetWriter(path, TABLES[name], compression="zstd",
                                                  compression_level=3)
            self.rows[name] = 0
        table = table.cast(TABLES[name])
        self.writers[name].write_table(table, row_group_size=ROW_GROUP)
        self.rows[name] += table.num_rows

    def close(self) -> None:
        for name, parts in self.pending.items():
            if parts:
                self.write(name, pa.concat_tables(parts))
        for w in self.writers.values():
            w.close()
        for name in TABLES:       # every table exists, even if empty
            if name not in self.writers:
                self.write(name, TABLES[name].empty_table())
                self.writers[name].close()


def _genotyped_samples(pop: Population, m: int, seed: int, rng: np.random.Generator):
    idx = np.sort(rng.choice(len(pop), size=m, replace=False))
    ids = governance.sample_ids(pop.person_id[idx], seed)
    order = np.argsort(ids)
    idx, ids = idx[order], ids[order]
    female = pop.sex[idx] == 1
    swap = rng.random(m) < 0.002
    missing = np.where(rng.random(m) < 0.005, rng.uniform(0.06, 0.12, m), 0.0)
    return genotypes.GenotypedSamples(idx, ids, female ^ swap, missing), swap


def _link_rows(pop: Population, samples, seed: int, rng: np.random.Generator):
    """sample_link: the genotyped, less a few unlinked VCF samples, plus a few linked
    samples absent from the VCF (both happen in real biobanks)."""
    m = len(samples.person_index)
    unlinked = rng.random(m) < 0.002
    pid = pop.person_id[samples.person_index]
    others = np.setdiff1d(pop.person_id, pid)
    extra = rng.choice(others, size=min(len(others), max(1, m // 500)), replace=False)
    extra_ids = governance.sample_ids(extra, seed + 1_000_003)
    link_pid = np.concatenate([pid[~unlinked], extra])
    link_ids = np.concatenate([samples.sample_id[~unlinked], extra_ids])
    return link_pid, link_ids, samples.sample_id[unlinked], extra_ids


def build_release(out: Path | str, *, persons: int = DEFAULTS["persons"],
                  genotyped: int = DEFAULTS["genotyped"], variants: int = DEFAULTS["variants"],
                  seed: int = DEFAULTS["seed"], force: bool = False,
                  progress: bool = True, lifelog_days: int | None = None,
                  wearers: float | None = None) -> dict[str, Any]:
    """Build a release into ``out`` and return its manifest (see module docstring).

    ``lifelog_days`` makes the lifelog dense: every person (or the fraction ``wearers``,
    drawn per person) wears a device over the last ``lifelog_days`` days up to the data
    cut, clipped to observation and death, instead of the default short wear periods;
    minute heart rate covers ~1% of the wearers for a week. Both are recorded in the
    manifest. Without them the build is the default one, byte for byte."""
    out = Path(out)
    if out.parent.is_dir():
        # a build killed with SIGKILL cannot clean up after itself: the next one puts a
        # release it had moved aside back in place and deletes its temp directories
        recover_dir(out)
    validate_arguments(out, persons, genotyped, variants, seed, force, lifelog_days, wearers)
    dense = None if lifelog_days is None else {
        "lifelog_days": lifelog_days, "wearers": 1.0 if wearers is None else float(wearers)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-{os.getpid()}-", dir=out.parent))
    try:
        manifest = _build(tmp, persons, genotyped, variants, seed, progress, dense)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _build(root: Path, n: int, m: int, v: int, seed: int, progress: bool,
           dense: dict | None = None) -> dict[str, Any]:
    bar: Callable[..., tqdm] = lambda **kw: tqdm(disable=not progress, unit_scale=True,  # noqa: E731
                                                 leave=False, **kw)
    pop = make_population(n, _rng(seed, "population"))
    truth: dict[str, Any] = {}
    genotyped_mask = np.zeros(n, bool)
    link = None
    if m:
        samples, swapped = _genotyped_samples(pop, m, seed, _rng(seed, "genotyped"))
        genotyped_mask[samples.person_index] = True
        layout = genotypes.make_layout(v, _rng(seed, "layout"))
        ldl_idx, t2d_idx = genotypes.choose_causal(layout, _rng(seed, "layout", 1))
        causal = np.concatenate([ldl_idx, t2d_idx])
        vcf = root / GENOTYPE_VCF
        vcf.parent.mkdir(parents=True)
        with bar(total=len(layout.pos), desc="genotypes (variants)") as pb:
            causal_g = genotypes.simulate_and_write_vcf(vcf, layout, pop, samples, causal,
                                                        _rng(seed, "genotypes"), pb.update)
        base_var = float(np.var(pop.ldl_env)) + 100.0
        beta_ldl, beta_t2d = genotypes.plant_effects(layout, ldl_idx, t2d_idx,
                                                     _rng(seed, "effects"), base_var)
        rs = _rng(seed, "scores")
        pop.ldl_genetic = genotypes.genetic_scores(pop, samples, layout, ldl_idx, beta_ldl,
                                                   causal_g[: len(ldl_idx)], rs)
        pop.t2d_genetic = genotypes.genetic_scores(pop, samples, layout, t2d_idx, beta_t2d,
                                                   causal_g[len(ldl_idx):], rs)
        link = _link_rows(pop, samples, seed, _rng(seed, "genotyped", 1))
        truth = _truth(layout, samples, swapped, ldl_idx, beta_ldl, t2d_idx, beta_t2d, base_var,
                       link)

    writers = _Writers(root)
    ldl_persons: set[int] = set()
    ids = dict.fromkeys(["obs", "visit", "cond", "drug", "meas", "proc"], 1)
    with bar(total=n, desc="persons") as pb:
        for c, lo in enumerate(range(0, n, CHUNK)):
            hi = min(lo + CHUNK, n)
            chunk = pop.slice(lo, hi)
            rng = _rng(seed, "chunk", c)
            _write_chunk(writers, chunk, genotyped_mask[lo:hi], rng, ids, ldl_persons,
                         dense and (dense, _rng(seed, "lifelog", c)))
            pb.update(hi - lo)
    writers.write("location", public.location_table())
    writers.write("region_indicator", public.region_indicator_table(_rng(seed, "regions")))
    for name, table in vocabulary_tables().items():
        writers.write(name, table)
    if link is not None:
        writers.write("sample_link", governance.sample_link_table(link[0], link[1]))
    writers.close()
    clustered = [t for t in CLUSTER_BY if writers.rows.get(t)]
    with bar(total=len(clustered), desc="clustering event tables") as pb:
        for name in clustered:
            cluster_file(name, root / table_file(name), spill=root / ".spill")
            pb.update(1)
    shutil.rmtree(root / ".spill", ignore_errors=True)
    if m:
        linked = set(link[0].tolist())
        n_ldl = len(ldl_persons & linked)
        truth["ldl_cholesterol"]["n_genotyped_with_ldl"] = n_ldl
        _add_power(truth["ldl_cholesterol"], n_ldl)
    return _finish_manifest(root, writers.rows, n, m, v, seed, truth, dense)


def _write_chunk(writers: _Writers, pop: Population, genotyped: np.ndarray,
                 rng: np.random.Generator, ids: dict[str, int], ldl_persons: set[int],
                 dense: tuple[dict, np.random.Generator] | None = None) -> None:
    hist = simulate(pop, rng)
    enc = clinical.make_encounters(pop, hist, rng)
    enc.visit_id = ids["visit"] + np.arange(len(enc.i))
    starts = clinical.treatment_starts(pop, hist, rng)
    body = clinical.make_body(pop, hist, starts, rng)
    tables = {
        "person": clinical.person_table(pop),
        "observation_period": clinical.observation_period_table(pop, hist, ids["obs"]),
        "visit_occurrence": clinical.visit_table(pop, hist, enc),
        "condition_occurrence": clinical.condition_table(pop, hist, enc, ids["cond"], rng),
        "drug_exposure": clinical.drug_table(pop, hist, enc, starts, ids["drug"], rng),
        "measurement": clinical.measurement_table(pop, hist, body, enc, ids["meas"], rng),
        "procedure_occurrence": clinical.procedure_table(pop, hist, enc, ids["proc"], rng),
        "death": clinical.death_table(pop, hist),
        "health_screening": public.screening_table(pop, hist, body, rng),
        "death_registry": public.death_registry_table(pop, hist),
    }
    if dense:
        # its own stream, written piece by piece in full row groups (bounded memory)
        (opts, lrng), wearer = dense, None
        for name, piece in lifelog.dense_tables(pop, hist, opts["lifelog_days"],
                                                opts["wearers"], lrng):
            if name == "wearers":
                wearer = piece
            else:
                writers.write_grouped(name, piece)
    else:
        daily, periods = lifelog.wearable_daily_table(pop, hist, body, rng)
        tables["wearable_daily"] = daily
        tables["wearable_intraday_hr"] = lifelog.intraday_hr_table(pop, periods, rng)
        wearer = np.zeros(len(pop), bool)
        wearer[periods[0]] = True
    tables["consent"] = governance.consent_table(pop, hist, genotyped, wearer, rng)
    for key, name in (("obs", "observation_period"), ("visit", "visit_occurrence"),
                      ("cond", "condition_occurrence"), ("drug", "drug_exposure"),
                      ("meas", "measurement"), ("proc", "procedure_occurrence")):
        ids[key] += tables[name].num_rows
    scr = tables["health_screening"]
    has_ldl = scr.filter(scr["ldl_cholesterol"].is_valid())["person_id"]
    ldl_persons.update(np.unique(has_ldl.to_numpy()).tolist())
    for name, table in tables.items():
        writers.write(name, table)


def _truth(layout, samples, swapped, ldl_idx, beta_ldl, t2d_idx, beta_t2d, base_var, link):
    h2 = 2 * layout.p_anc[ldl_idx] * (1 - layout.p_anc[ldl_idx]) * beta_ldl ** 2
    vp = base_var + h2.sum()
    return {
        "genome_build": "GRCh38",
        "ldl_cholesterol": {
            "phenotype": "health_screening.ldl_cholesterol, first non-missing value per person",
            "unit": "mg/dL", "effect": "beta, mg/dL per alt allele",
            "phenotype_variance": round(float(vp), 2),
            "variants": [genotypes.variant_record(layout, int(j), beta=round(float(b), 4),
                                                  h2=round(float(h / vp), 5))
                         for j, b, h in zip(ldl_idx, beta_ldl, h2, strict=True)],
        },
        "t2d": {
            "phenotype": "any condition_occurrence under KCD8 E11 (type 2 diabetes)",
            "effect": "log hazard ratio of onset per alt allele (Gompertz age model)",
            "variants": [genotypes.variant_record(layout, int(j), log_hr=round(float(b), 4))
                         for j, b in zip(t2d_idx, beta_t2d, strict=True)],
        },
        "stratification": {
            "ancestry_clusters": 3, "fst": list(genotypes.FST),
            "ldl_shift_mg_dl": {"cluster_1": 14.0, "cluster_2": -10.0},
            "t2d_log_hazard_shift": {"cluster_1": 0.15},
            "note": "cluster 1 enriched in the south-east, cluster 2 in the south-west and "
                    "Jeju; leaving out principal components inflates lambda GC",
        },
        "qc": {
            "low_call_rate_samples": samples.sample_id[samples.missing_rate > 0].tolist(),
            "sex_mismatch_samples": samples.sample_id[swapped].tolist(),
            "low_call_rate_variants": [layout.variant_id(j)
                                       for j in np.flatnonzero(layout.call_missing > 0.05)],
            "hwe_fail_variants": [layout.variant_id(j) for j in np.flatnonzero(layout.hwe_fail)],
            "vcf_samples_without_link": link[2].tolist(),
            "linked_samples_not_in_vcf": link[3].tolist(),
        },
    }


def _add_power(section: dict, n: int) -> None:
    for var in section["variants"]:
        ncp = n * var["h2"] / (1 - var["h2"])
        var["expected_chi2"] = round(1 + ncp, 2)
        var["power_at_5e-8"] = round(float(ncx2.sf(genotypes.GWAS_ALPHA_CHI2, 1, ncp)), 4)
    section["expected_discoveries"] = round(sum(v["power_at_5e-8"] for v in section["variants"]),
                                            2)


def _finish_manifest(root: Path, rows: dict[str, int], n: int, m: int, v: int, seed: int,
                     truth: dict, dense: dict | None = None) -> dict[str, Any]:
    tables = {name: {"path": table_file(name), "domain": table_file(name).split("/")[0],
                     "rows": rows[name], "sha256": sha256_file(root / table_file(name))}
              for name in TABLES}
    files = {}
    if m:
        for rel in (GENOTYPE_VCF, GENOTYPE_INDEX):
            files[rel] = {"sha256": sha256_file(root / rel), "bytes": (root / rel).stat().st_size}
    manifest: dict[str, Any] = {
        "release_id": "", "version": "1", "schema_version": SCHEMA_VERSION,
        "kind": "synthetic", "seed": seed, "created": created_timestamp(),
        "generator": {"name": "workbench.synth", "version": workbench.__version__,
                      "arguments": {"persons": n, "genotyped": m, "variants": v, "seed": seed,
                                    **(dense or {})}},
        "data_cut": "2024-12-31",
        "tables": tables, "files": files,
        "genotypes": ({"vcf": GENOTYPE_VCF, "index": GENOTYPE_INDEX, "reference_genome": "GRCh38",
                       "samples": m, "variants": v} if m else None),
        "truth": truth,
    }
    manifest["release_id"] = f"synth-{content_id(manifest)}"
    write_manifest(root, manifest)
    return manifest

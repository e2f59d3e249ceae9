"""Synthetic joint-called genotypes: LD blocks, three ancestry clusters, planted effects.

The genome layout (positions, LD blocks, allele frequencies, causal variants) is drawn
first; genotypes are then simulated one LD block at a time and streamed to a bgzipped
VCF (GRCh38 contig names) with a tabix index, so memory stays at one block. Encoding is
vectorised (a lookup table over the block's genotype codes), never a Python loop per
genotype.

Haplotypes within a block come from a Gaussian copula: an AR(1) latent per haplotype,
thresholded at the ancestry cluster's allele frequency, which gives LD that decays with
distance inside a block and none between blocks. Cluster frequencies follow the
Balding-Nichols model around an ancestral frequency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pysam
from scipy.special import ndtri

from workbench.synth.population import Population

# GRCh38 lengths; chrX variants avoid the pseudo-autosomal regions.
CONTIGS: list[tuple[str, int]] = [
    ("chr1", 248956422), ("chr2", 242193529), ("chr3", 198295559), ("chr4", 190214555),
    ("chr5", 181538259), ("chr6", 170805979), ("chr7", 159345973), ("chr8", 145138636),
    ("chr9", 138394717), ("chr10", 133797422), ("chr11", 135086622), ("chr12", 133275309),
    ("chr13", 114364328), ("chr14", 107043718), ("chr15", 101991189), ("chr16", 90338345),
    ("chr17", 83257441), ("chr18", 80373285), ("chr19", 58617616), ("chr20", 64444167),
    ("chr21", 46709983), ("chr22", 50818468), ("chrX", 156040895),
]
_X_NONPAR = (2_781_480, 155_701_382)
FST = (0.004, 0.03, 0.05)            # per ancestry cluster, against the ancestral frequency
LDL_H2_RANGE = (0.018, 0.032)         # variance explained per causal LDL variant
T2D_LOG_HAZARD_RANGE = (0.50, 0.75)   # per alt allele
N_LDL, N_T2D = 10, 5
GWAS_ALPHA_CHI2 = 29.716              # chi-square(1) at p = 5e-8

_LUT = np.frombuffer(b"0/0\t0/1\t1/1\t./.\t", dtype=np.uint8).reshape(4, 4)


@dataclass
class Layout:
    """Where the variants are and how common they are (length V arrays)."""

    contig: np.ndarray      # int16 index into CONTIGS
    pos: np.ndarray         # int64, 1-based
    ref: np.ndarray         # '<U1'
    alt: np.ndarray
    block: np.ndarray       # int32 LD block id, increasing along the genome
    rho: np.ndarray         # float, AR(1) correlation with the previous variant in the block
    p_anc: np.ndarray       # ancestral alt-allele frequency
    p_pop: np.ndarray       # (3, V) alt-allele frequency per cluster
    call_missing: np.ndarray  # per-variant missing-call rate
    hwe_fail: np.ndarray    # bool: artefact with excess heterozygotes

    def variant_id(self, j: int) -> str:
        return f"{CONTIGS[self.contig[j]][0]}:{self.pos[j]}:{self.ref[j]}:{self.alt[j]}"

    def block_span(self, j: int) -> tuple[int, int]:
        idx = np.flatnonzero(self.block == self.block[j])
        return int(self.pos[idx[0]]), int(self.pos[idx[-1]])


@dataclass
class GenotypeTruth:
    """What was planted, for the manifest's ``truth`` section and the phenotype model."""

    ldl: list[dict] = field(default_factory=list)
    t2d: list[dict] = field(default_factory=list)
    qc: dict = field(default_factory=dict)


def make_layout(n_variants: int, rng: np.random.Generator) -> Layout:
    """Draw positions in LD blocks, alleles and a realistic allele-frequency spectrum."""
    lengths = np.array([c[1] for c in CONTIGS], dtype=float)
    per_contig = np.floor(lengths / lengths.sum() * n_variants).astype(int)
    per_contig[: n_variants - per_contig.sum()] += 1
    contig, pos, block = [], [], []
    next_block = 0
    for ci, n_c in enumerate(per_contig):
        if n_c == 0:
            continue
        lo, hi = (1_000_000, lengths[ci] - 1_000_000) if ci < 22 else _X_NONPAR
        n_blocks = max(1, int(np.ceil(n_c / 20)))
        cuts = np.sort(rng.choice(np.arange(1, n_c), size=min(n_blocks - 1, n_c - 1),
                                  replace=False)) if n_c > 1 else np.array([], int)
        sizes = np.diff(np.concatenate([[0], cuts, [n_c]]))
        slot = (hi - lo) / len(sizes)
        for b, size in enumerate(sizes):
            width = int(min(slot * 0.5, max(20_000, size * 4_000)))
            start = int(lo + b * slot + rng.random() * (slot - width))
            offs = np.sort(rng.choice(width, size=size, replace=False))
            pos.append(start + offs)
            contig.append(np.full(size, ci, np.int16))
            block.append(np.full(size, next_block, np.int32))
            next_block += 1
    contig_a, pos_a, block_a = np.concatenate(contig), np.concatenate(pos), np.concatenate(block)
    v = len(pos_a)
    bases = np.array(list("ACGT"))
    ref_i = rng.integers(0, 4, v)
    alt_i = (ref_i + rng.integers(1, 4, v)) % 4
    # spectrum: 20% rare (MAF 0.1-1%), the rest MAF from a U-shaped Beta, minor allele = alt 85%
    maf = np.where(rng.random(v) < 0.2, rng.uniform(0.001, 0.01, v),
                   np.clip(rng.beta(0.6, 1.4, v) * 0.5, 0.01, 0.5))
    p_anc = np.where(rng.random(v) < 0.85, maf, 1 - maf)
    p_pop = np.vstack([_balding_nichols(p_anc, f, rng) for f in FST])
    rho = rng.uniform(0.75, 0.98, v)
    rho[np.r_[True, block_a[1:] != block_a[:-1]]] = 0.0
    call_missing = np.full(v, 0.003)
    bad = rng.random(v) < 0.01
    call_missing[bad] = rng.uniform(0.06, 0.15, bad.sum())
    hwe_fail = (rng.random(v) < 0.003) & ~bad
    return Layout(contig_a, pos_a.astype(np.int64), bases[ref_i], bases[alt_i], block_a, rho,
                  p_anc, p_pop, call_missing, hwe_fail)


def _balding_nichols(p: np.ndarray, fst: float, rng: np.random.Generator) -> np.ndarray:
    a = p * (1 - fst) / fst
    b = (1 - p) * (1 - fst) / fst
    return np.clip(rng.beta(a, b), 1e-4, 1 - 1e-4)


def choose_causal(layout: Layout, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pick causal variants: common, autosomal, one per LD block, not QC artefacts."""
    blocks, first = np.unique(layout.block, return_index=True)
    sizes = np.diff(np.r_[first, len(layout.block)])
    ok_blocks = blocks[(sizes >= 5) & (layout.contig[first] < 22)]
    chosen = rng.choice(ok_blocks, size=N_LDL + N_T2D, replace=False)
    idx = []
    for b in chosen:
        members = np.flatnonzero(layout.block == b)
        j = int(members[len(members) // 2])
        maf = rng.uniform(0.2, 0.45)
        layout.p_anc[j] = maf if rng.random() < 0.5 else 1 - maf
        layout.p_pop[:, j] = _balding_nichols(np.array([layout.p_anc[j]]) .repeat(3),
                                              0.01, rng)
        layout.call_missing[j] = 0.003
        layout.hwe_fail[j] = False
        idx.append(j)
    idx_a = np.array(idx)
    return idx_a[:N_LDL], idx_a[N_LDL:]


@dataclass
class GenotypedSamples:
    """The genotyped persons as they appear in the VCF (columns sorted by sample id)."""

    person_index: np.ndarray   # index into the population, in VCF column order
    sample_id: np.ndarray      # str, same order
    genetic_female: np.ndarray  # bool; differs from the recorded sex for planted mismatches
    missing_rate: np.ndarray   # per-sample extra missing-call rate


def simulate_and_write_vcf(
    path: Path, layout: Layout, pop: Population, samples: GenotypedSamples,
    causal: np.ndarray, rng: np.random.Generator, progress=None,
) -> np.ndarray:
    """Simulate genotypes block by block, stream them to a bgzipped VCF, index it.

    Returns the true (pre-missingness) genotypes at ``causal`` for the genotyped samples,
    shape (len(causal), M), int8 allele counts.
    """
    m = len(samples.person_index)
    anc = pop.ancestry[samples.person_index]
    hap_anc = np.repeat(anc, 2)                         # 2 haplotypes per sample
    male_rows = np.flatnonzero(~samples.genetic_female)
    causal_pos = {int(j): k for k, j in enumerate(causal)}
    causal_g = np.zeros((len(causal), m), np.int8)
    header = _vcf_header(samples.sample_id)
    writer = pysam.libcbgzf.BGZFile(str(path), "wb")
    try:
        writer.write(header)
        bounds = np.flatnonzero(np.r_[True, layout.block[1:] != layout.block[:-1], True])
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            g = _block_genotypes(layout, lo, hi, hap_anc, male_rows, rng)
            for j in range(lo, hi):
                if j in causal_pos:
                    causal_g[causal_pos[j]] = g[j - lo]
            codes = _with_missing(g, layout, lo, hi, samples.missing_rate, rng)
            writer.write(_encode_rows(layout, lo, hi, codes))
            if progress is not None:
                progress(hi - lo)
    finally:
        writer.close()
    pysam.tabix_index(str(path), preset="vcf", force=True)
    return causal_g


def _block_genotypes(layout: Layout, lo: int, hi: int, hap_anc: np.ndarray,
                     male_rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n_hap = len(hap_anc)
    b = hi - lo
    e = rng.standard_normal((b, n_hap), dtype=np.float32)
    z = np.empty_like(e)
    z[0] = e[0]
    for k in range(1, b):
        r = np.float32(layout.rho[lo + k])
        z[k] = r * z[k - 1] + np.sqrt(np.float32(1) - r * r) * e[k]
    thresh = ndtri(layout.p_pop[:, lo:hi]).astype(np.float32)   # (3, b)
    alleles = z < thresh[hap_anc].T                               # (b, n_hap)
    h = alleles.reshape(b, -1, 2)
    g = h[:, :, 0].astype(np.int8) + h[:, :, 1]
    if layout.contig[lo] == 22 and len(male_rows):                 # chrX: males hemizygous
        g[:, male_rows] = 2 * h[:, male_rows, 0]
    hwe = np.flatnonzero(layout.hwe_fail[lo:hi])
    for k in hwe:                                                 # genotyping artefact
        flip = rng.random(g.shape[1]) < 0.3
        g[k, flip] = 1
    return g


def _with_missing(g: np.ndarray, layout: Layout, lo: int, hi: int,
                  sample_missing: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rate = layout.call_missing[lo:hi, None] + sample_missing[None, :]
    codes = g.copy()
    codes[rng.random(g.shape, dtype=np.float32) < rate] = 3
    return codes


def _encode_rows(layout: Layout, lo: int, hi: int, codes: np.ndarray) -> bytes:
    body = _LUT[codes].reshape(hi - lo, -1)      # (b, 4M) bytes
    body[:, -1] = ord("\n")
    out = bytearray()
    for k, j in enumerate(range(lo, hi)):
        out += (f"{CONTIGS[layout.contig[j]][0]}\t{layout.pos[j]}\t.\t{layout.ref[j]}\t"
                f"{layout.alt[j]}\t.\tPASS\t.\tGT\t").encode()
        out += body[k].tobytes()
    return bytes(out)


def _vcf_header(sample_ids: np.ndarray) -> bytes:
    lines = ["##fileformat=VCFv4.2", "##reference=GRCh38",
             '##FILTER=<ID=PASS,Description="All filters passed">',
             '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">']
    lines += [f"##contig=<ID={name},length={length}>" for name, length in CONTIGS]
    lines.append("\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO",
                            "FORMAT", *sample_ids.tolist()]))
    return ("\n".join(lines) + "\n").encode()


def plant_effects(layout: Layout, ldl_idx: np.ndarray, t2d_idx: np.ndarray,
                  rng: np.random.Generator, ldl_base_var: float) -> tuple[np.ndarray, np.ndarray]:
    """Effect sizes: LDL in mg/dL per alt allele sized by variance explained; T2D log-hazard."""
    h2 = rng.uniform(*LDL_H2_RANGE, len(ldl_idx))
    vp = ldl_base_var / (1 - h2.sum())
    p = layout.p_anc[ldl_idx]
    beta_ldl = np.sqrt(h2 * vp / (2 * p * (1 - p))) * rng.choice([-1.0, 1.0], len(ldl_idx))
    beta_t2d = rng.uniform(*T2D_LOG_HAZARD_RANGE, len(t2d_idx)) * rng.choice([-1.0, 1.0],
                                                                             len(t2d_idx))
    return beta_ldl, beta_t2d


def genetic_scores(pop: Population, samples: GenotypedSamples, layout: Layout,
                   idx: np.ndarray, beta: np.ndarray, causal_g: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """Per-person genetic score: VCF genotypes for the genotyped, HWE draws for the rest."""
    n = len(pop)
    g = np.empty((len(idx), n), np.int8)
    p = layout.p_pop[:, idx].T[:, pop.ancestry]                       # (k, N)
    g[:] = rng.binomial(2, p).astype(np.int8)
    g[:, samples.person_index] = causal_g
    centre = 2 * layout.p_anc[idx]
    return ((g - centre[:, None]) * beta[:, None]).sum(axis=0)


def variant_record(layout: Layout, j: int, **extra) -> dict:
    """A causal variant as it goes into the manifest's truth section."""
    lo, hi = layout.block_span(j)
    return {"id": layout.variant_id(j), "chrom": CONTIGS[layout.contig[j]][0],
            "pos": int(layout.pos[j]), "ref": str(layout.ref[j]), "alt": str(layout.alt[j]),
            "alt_af": round(float(layout.p_anc[j]), 4), "ld_block_start": lo,
            "ld_block_end": hi, **extra}

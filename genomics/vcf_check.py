"""Cheap pre-checks of genotype files before Hail reads them: a clear message, not a JVM trace.

``check_vcf`` reads a VCF's header and its first ``max_lines`` data lines (plain text,
gzip or bgzip) and checks what Hail would either choke on deep inside a Spark job or,
worse, accept silently:

- the compression matches the name (``.gz``/``.bgz`` is gzip; a bgzip file ends with
  BGZF's 28-byte empty block, so a truncated copy is caught before any import);
- line 1 is ``##fileformat=VCF...``, GT is declared (``##FORMAT=<ID=GT,...>``; Hail
  drops undeclared fields), and the column header is ``#CHROM POS ID REF ALT QUAL
  FILTER INFO [FORMAT sample...]``, tab-separated, sample ids unique;
- each data line has as many columns as the header, POS is a positive integer, QUAL a
  number or ``.``, the contig is named for the reference (``chr1`` for GRCh38, ``1`` for
  GRCh37), positions are sorted within a contig and a contig's lines are contiguous;
- every GT is haploid or diploid (``0/1/1`` is not) and its allele indices exist in ALT.

``check_plink`` does the same for PLINK 1 binary files: the ``.bed`` magic bytes, six
columns in ``.bim`` and ``.fam``, unique sample ids, and a ``.bed`` size that matches
the variant and sample counts (a truncated copy is caught).

Problems raise :class:`~workbench.errors.GenotypeInputError` naming the file, the line
and what to do; what passes is summarised (sample ids, lines checked).

>>> import tempfile, pathlib
>>> vcf = pathlib.Path(tempfile.mkdtemp()) / "tiny.vcf"
>>> rows = ["##fileformat=VCFv4.2", "##FORMAT=<ID=GT,Number=1,Type=String>",
...         "#CHROM POS ID REF ALT QUAL FILTER INFO FORMAT s1 s2",
...         "chr1 10 . A G . PASS . GT 0/1 0/0/1"]
>>> _ = vcf.write_text("".join(r.replace(" ", "\\t") + "\\n" for r in rows))
>>> try:
...     check_vcf(vcf)
... except GenotypeInputError as e:
...     print(e.message)
tiny.vcf line 4: sample s2 has GT '0/0/1' (ploidy 3)
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import GenotypeInputError

BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
FIXED_COLUMNS = ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO"]
_PLINK_MAGIC = b"\x6c\x1b\x01"
_B37_STYLE = {*map(str, range(1, 23)), "X", "Y", "MT"}
_GT_SPLIT = re.compile(r"[/|]")
_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?(inf|Inf|INF|nan|NaN|NAN)")


@dataclass(frozen=True)
class VcfSummary:
    """What the pre-check saw: the sample ids (header order) and how far it read."""

    samples: list[str]
    header_lines: int
    data_lines_checked: int


@dataclass(frozen=True)
class PlinkSummary:
    """Sample ids (IID, ``.fam`` order) and the variant count (``.bim`` lines)."""

    samples: list[str]
    variants: int


def is_bgzf(path: Path | str) -> bool:
    """True for a BGZF (bgzip) file: gzip with the 'BC' extra subfield."""
    with open(path, "rb") as f:
        head = f.read(16)
    return len(head) >= 14 and head[:4] == b"\x1f\x8b\x08\x04" and head[12:14] == b"BC"


def is_gzip(path: Path | str) -> bool:
    """True when the file starts with gzip's magic bytes (plain gzip or bgzip)."""
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def has_bgzf_eof(path: Path | str) -> bool:
    """True when a BGZF file ends with the empty end-of-file block (it was not cut short)."""
    path = Path(path)
    size = path.stat().st_size
    if size < len(BGZF_EOF):
        return False
    with open(path, "rb") as f:
        f.seek(size - len(BGZF_EOF))
        return f.read() == BGZF_EOF


def check_vcf(path: Path | str, *, reference: str | None = "GRCh38",
              max_lines: int = 1000) -> VcfSummary:
    """Check the header and the first ``max_lines`` data lines (see the module docstring).

    ``reference``: GRCh38 or GRCh37 checks contig names; None skips that check.
    """
    path = Path(path)
    if not path.is_file():
        raise GenotypeInputError(f"VCF {path} does not exist")
    _check_compression(path)
    lines = _lines(path)
    header_at, columns, formats = _read_header(path, lines)
    samples = columns[9:]
    n_cols = len(columns)
    last: tuple[str, int] | None = None
    done_contigs: set[str] = set()
    checked = 0
    for lineno, line in lines:
        if checked >= max_lines:
            break
        checked += 1
        where = f"{path.name} line {lineno}"
        fields = line.split("\t")
        if len(fields) != n_cols:
            raise GenotypeInputError(
                f"{where} has {len(fields)} tab-separated columns; the header (line "
                f"{header_at}) has {n_cols} ({n_cols - 9 if n_cols > 9 else 0} samples)",
                hint="every data line needs the 8 fixed columns, FORMAT and one value per "
                     "sample, separated by tabs (not spaces); the file may be cut or mixed")
        contig, pos_text = fields[0], fields[1]
        if not pos_text.isdigit() or int(pos_text) < 1:
            raise GenotypeInputError(f"{where}: POS {pos_text!r} is not a positive integer",
                                     hint="column 2 holds the 1-based position")
        pos = int(pos_text)
        _check_contig(where, contig, reference)
        if fields[5] != "." and not _FLOAT.fullmatch(fields[5]):
            raise GenotypeInputError(f"{where}: QUAL {fields[5]!r} is not a number or '.'",
                                     hint="column 6 is the quality score; use '.' if unknown")
        if last is not None:
            if contig == last[0] and pos < last[1]:
                raise GenotypeInputError(
                    f"{where}: {contig}:{pos} comes after {contig}:{last[1]}; the VCF is "
                    "not sorted by position",
                    hint="sort it: bcftools sort -Oz -o sorted.vcf.bgz in.vcf, then bgzip "
                         "input is read in parallel")
            if contig != last[0]:
                done_contigs.add(last[0])
                if contig in done_contigs:
                    raise GenotypeInputError(
                        f"{where}: contig {contig} appears again after other contigs; the "
                        "VCF is not sorted", hint="sort it: bcftools sort -Oz -o sorted.vcf.bgz")
        last = (contig, pos)
        if samples:
            if "GT" not in formats:
                raise GenotypeInputError(
                    f"{path.name}: the header declares no GT field (##FORMAT=<ID=GT,...>), so "
                    "Hail would read no genotype calls",
                    hint="add the line ##FORMAT=<ID=GT,Number=1,Type=String,Description="
                         "\"Genotype\"> to the header (bcftools annotate -h)")
            _check_calls(where, fields, samples)
    if checked == 0:
        raise GenotypeInputError(f"{path.name} has a header but no variant lines",
                                 hint="a GWAS needs variants; check the export that wrote it")
    return VcfSummary(samples=samples, header_lines=header_at, data_lines_checked=checked)


def check_plink(bed: Path | str, *, max_lines: int = 1000) -> PlinkSummary:
    """Check a PLINK 1 ``.bed`` with its ``.bim`` and ``.fam`` (see the module docstring)."""
    bed = Path(bed)
    bim, fam = bed.with_suffix(".bim"), bed.with_suffix(".fam")
    for f in (bed, bim, fam):
        if not f.is_file():
            raise GenotypeInputError(f"PLINK file {f} does not exist",
                                     hint="give the .bed path (or the prefix); .bim and .fam "
                                          "must lie beside it")
    with open(bed, "rb") as f:
        magic = f.read(3)
    if magic != _PLINK_MAGIC:
        hint = ("it is in the old sample-major layout; rewrite it with plink --make-bed"
                if magic[:2] == _PLINK_MAGIC[:2] else
                "a .bed starts with bytes 6c 1b 01; write it with plink --make-bed or "
                "plink2 --make-bed")
        raise GenotypeInputError(f"{bed.name} is not a PLINK 1 variant-major .bed file",
                                 hint=hint)
    samples = []
    for lineno, line in _text_lines(fam):
        parts = line.split()
        if len(parts) != 6:
            raise GenotypeInputError(
                f"{fam.name} line {lineno} has {len(parts)} columns; a .fam has 6 (FID IID "
                "father mother sex phenotype)", hint="rewrite it with plink --make-bed")
        samples.append(parts[1])
    _check_unique(samples, f"{fam.name} (IID, column 2)")
    n_variants = 0
    for lineno, line in _text_lines(bim):
        n_variants += 1
        if n_variants > max_lines:
            continue
        parts = line.split()
        if len(parts) != 6:
            raise GenotypeInputError(
                f"{bim.name} line {lineno} has {len(parts)} columns; a .bim has 6 (chrom id "
                "cM position A1 A2)", hint="rewrite it with plink --make-bed")
        if not parts[3].isdigit():
            raise GenotypeInputError(f"{bim.name} line {lineno}: position {parts[3]!r} is not "
                                     "a non-negative integer")
    expected = 3 + n_variants * (-(-len(samples) // 4))
    found = bed.stat().st_size
    if found != expected:
        raise GenotypeInputError(
            f"{bed.name} has {found:,} bytes; {n_variants:,} variants (.bim) x "
            f"{len(samples):,} samples (.fam) need {expected:,}",
            hint="the .bed is truncated or belongs to other .bim/.fam files; copy or write "
                 "the three files again together")
    return PlinkSummary(samples=samples, variants=n_variants)


def _check_compression(path: Path) -> None:
    gz_name = path.suffix in (".gz", ".bgz")
    gz = is_gzip(path)
    if gz_name and not gz:
        raise GenotypeInputError(f"{path.name} ends in {path.suffix} but is not gzip-compressed",
                                 hint="compress it with bgzip, or drop the suffix")
    if gz and not gz_name:
        raise GenotypeInputError(f"{path.name} is gzip-compressed but its name does not end "
                                 "in .gz or .bgz", hint="rename it to end in .vcf.bgz")
    if gz and is_bgzf(path) and not has_bgzf_eof(path):
        raise GenotypeInputError(
            f"{path.name} is truncated: a bgzip file ends with a 28-byte end-of-file block "
            "and this one does not", hint="copy or download it again (compare its checksum), "
                                          "or recompress the full VCF with bgzip")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without the newline), decoding errors as GenotypeInputError."""
    opener = gzip.open if is_gzip(path) else open
    lineno = 0
    try:
        with opener(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):  # noqa: B007 - used after the loop
                if lineno == 1 and raw.startswith(b"BCF"):
                    raise GenotypeInputError(f"{path.name} is BCF, not VCF text",
                                             hint="convert it: bcftools view -Oz -o x.vcf.bgz")
                if raw.endswith(b"\r\n"):
                    raise GenotypeInputError(
                        f"{path.name} line {lineno} ends in CR LF (Windows line endings)",
                        hint="convert it: sed 's/\\r$//' (then bgzip)")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise GenotypeInputError(f"{path.name} line {lineno} is not UTF-8 text "
                                             f"(byte {e.start})",
                                             hint="is this a VCF? check the file") from None
                yield lineno, text.rstrip("\n")
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise GenotypeInputError(f"{path.name}: the compressed data ends or breaks after line "
                                 f"{lineno} ({e})",
                                 hint="the file is truncated or corrupt; copy it again or "
                                      "recompress the full VCF with bgzip") from None


def _read_header(path: Path, lines: Iterator[tuple[int, str]]
                 ) -> tuple[int, list[str], set[str]]:
    """(line of #CHROM, its columns, the FORMAT field ids declared)."""
    first = True
    formats: set[str] = set()
    for lineno, line in lines:
        if first and not line.startswith("##fileformat=VCF"):
            raise GenotypeInputError(
                f"{path.name} line 1 is {line[:40]!r}; a VCF starts with "
                "'##fileformat=VCFv4.x'", hint="is this a VCF? a header line may be missing")
        first = False
        if line.startswith("##FORMAT=<ID="):
            formats.add(line[len("##FORMAT=<ID="):].split(",")[0].rstrip(">"))
        if line.startswith("##"):
            continue
        if not line.startswith("#CHROM"):
            raise GenotypeInputError(
                f"{path.name} line {lineno}: expected the column header line (#CHROM POS ID "
                f"REF ALT QUAL FILTER INFO FORMAT samples...), found {line[:40]!r}",
                hint="the #CHROM line is missing; every VCF has it just before the data")
        columns = line.split("\t")
        if columns[:8] != FIXED_COLUMNS or (len(columns) > 8 and columns[8] != "FORMAT"):
            raise GenotypeInputError(
                f"{path.name} line {lineno}: the column header is {' '.join(columns[:9])!r}; "
                "expected #CHROM POS ID REF ALT QUAL FILTER INFO FORMAT, tab-separated",
                hint="columns must be separated by tabs, not spaces")
        if len(columns) <= 9:
            raise GenotypeInputError(f"{path.name} line {lineno}: the VCF has no sample columns",
                                     hint="a GWAS needs genotypes: one column per sample")
        _check_unique(columns[9:], f"{path.name} line {lineno} (sample ids)")
        return lineno, columns, formats
    raise GenotypeInputError(f"{path.name} ends before the #CHROM column header line",
                             hint="the file is empty or cut short")


def _check_unique(ids: list[str], where: str) -> None:
    seen: set[str] = set()
    dup = []
    for s in ids:
        if s in seen:
            dup.append(s)
        seen.add(s)
    if "" in seen:
        raise GenotypeInputError(f"{where}: a sample id is empty",
                                 hint="every sample needs an id; look for two tabs in a row "
                                      "or a tab at the end of the line")
    if dup:
        raise GenotypeInputError(f"{where}: {len(dup)} duplicate sample id(s), e.g. "
                                 f"{', '.join(dict.fromkeys(dup[:3]))}",
                                 hint="every sample needs its own id")


def _check_contig(where: str, contig: str, reference: str | None) -> None:
    if reference == "GRCh38" and contig in _B37_STYLE:
        raise GenotypeInputError(
            f"{where}: contig {contig!r} is not a GRCh38 name (GRCh38 says "
            f"chr{contig.replace('MT', 'M')})",
            hint="give --reference GRCh37 if the data are on GRCh37, or rename contigs: "
                 "bcftools annotate --rename-chrs")
    if reference == "GRCh37" and contig.startswith("chr"):
        raise GenotypeInputError(
            f"{where}: contig {contig!r} is not a GRCh37 name (GRCh37 says {contig[3:]})",
            hint="give --reference GRCh38 if the data are on GRCh38, or rename contigs: "
                 "bcftools annotate --rename-chrs")


def _check_calls(where: str, fields: list[str], samples: list[str]) -> None:
    keys = fields[8].split(":")
    if "GT" not in keys:
        raise GenotypeInputError(f"{where}: FORMAT {fields[8]!r} has no GT (genotype call)",
                                 hint="association needs hard calls in GT")
    gi = keys.index("GT")
    n_alleles = 1 + (len(fields[4].split(",")) if fields[4] != "." else 0)
    for value in set(fields[9:]):
        parts = value.split(":")
        gt = parts[gi] if gi < len(parts) else "."
        problem = _gt_problem(gt, n_alleles)
        if problem:
            sample = samples[fields.index(value, 9) - 9]
            raise GenotypeInputError(
                f"{where}: sample {sample} has GT {gt!r} ({problem})",
                hint="Hail reads haploid or diploid calls whose allele indices refer to REF "
                     "(0) and ALT (1..); fix the call or set it missing ('./.')")


def _gt_problem(gt: str, n_alleles: int) -> str | None:
    if gt in (".", "./.", ".|."):
        return None
    alleles = _GT_SPLIT.split(gt)
    if len(alleles) > 2:
        return f"ploidy {len(alleles)}"
    for a in alleles:
        if a == ".":
            continue
        if not a.isdigit():
            return f"allele {a!r} is not an index"
        if int(a) >= n_alleles:
            return f"allele {a} but ALT lists {n_alleles - 1}"
    return None


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                yield lineno, line

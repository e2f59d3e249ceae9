"""Bring your own phenotypes: a TSV, CSV or Parquet table matched to the genotypes' samples.

``read_table(path)`` reads the file with Polars (by extension: ``.tsv``/``.txt``/``.tab``
tab-separated, ``.csv`` comma-separated, ``.parquet``/``.pq``). ``prepare(table, ...)``
checks it and matches it to the samples of a VCF or PLINK file:

- the sample column exists and holds unique, non-empty ids (they must equal the VCF's
  sample names, or the ``.fam`` IIDs);
- the trait and every covariate exist (the error lists the columns there are) and are
  numeric or boolean; text ``true``/``false`` (any case) and ``1``/``0`` are booleans,
  coded 1.0/0.0; ``""``, ``NA``, ``NaN``, ``.`` and ``null`` are missing; anything else
  is an error naming the column, the line and the value;
- a column named ``female`` (boolean or 0/1), when present, is passed on so that QC can
  compare genetic with recorded sex, as on a release;
- rows whose sample is not in the genotypes are counted (a warning), samples in the
  genotypes but not in the table are counted, samples missing the trait are dropped and
  counted; no overlap at all, a trait missing everywhere or with one value is an error.

A trait whose values are all 0/1 (or boolean) is binary (logistic regression) unless
``model="linear"`` is asked for; anything else is quantitative (linear). ``to_hail``
hands the table to Hail keyed by ``s`` through Arrow and pandas.

>>> import polars as pl
>>> table = pl.DataFrame({"IID": ["a", "b", "c", "d"], "ldl": ["3.1", "NA", "2.2", "4.0"],
...                       "statin": ["TRUE", "False", "1", "0"]})
>>> p = prepare(table, sample_column="IID", trait="ldl", covariates=["statin"],
...             genotype_samples=["a", "b", "c", "x"])
>>> p.table.rows()
[('a', 3.1, 1.0), ('c', 2.2, 1.0)]
>>> p.counts["table_only"], p.counts["genotype_only"], p.counts["missing_trait"], p.binary
(1, 1, 1, False)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from cohort.privacy import SmallCellPolicy
from genomics.link import loss_report
from workbench.errors import PhenotypeInputError

if TYPE_CHECKING:
    import hail as hl

Model = Literal["auto", "linear", "logistic"]
MISSING = ("", "NA", "N/A", "NaN", "nan", "NAN", ".", "null", "NULL", "None")
STEPS = ["rows in the phenotype table", "sample in the genotypes", "trait not missing"]
_SEPARATORS = {".tsv": "\t", ".txt": "\t", ".tab": "\t", ".csv": ","}
_PARQUET = (".parquet", ".pq")
_COUNTS = ["table_rows", "genotype_samples", "matched", "table_only", "genotype_only",
           "missing_trait", "missing_covariates", "analysed"]


@dataclass
class Phenotypes:
    """The checked table (``s`` plus one Float64 column per trait, covariate, ``female``),
    one row per sample in the genotypes with the trait present, and the match counts."""

    table: pl.DataFrame
    trait: str
    covariates: list[str]
    binary: bool
    counts: dict[str, int]
    source: str
    sample_column: str
    notes: list[str] = field(default_factory=list)

    def report(self, policy: SmallCellPolicy | None = None) -> pl.DataFrame:
        """step, samples remaining, samples lost (small cells suppressed as a group)."""
        c = self.counts
        table = loss_report(STEPS, [c["table_rows"], c["matched"], c["analysed"]],
                            policy or SmallCellPolicy())
        return table.rename({"persons": "samples"})

    def to_json(self, policy: SmallCellPolicy | None = None) -> dict[str, Any]:
        """The ``phenotypes`` section of ``qc.json``: every count through the policy."""
        policy = policy or SmallCellPolicy()
        cells = policy.counts([self.counts[k] for k in _COUNTS])
        return {"source": self.source, "sample_column": self.sample_column,
                "trait": self.trait, "binary": self.binary, "covariates": self.covariates,
                "counts": {k: (c if isinstance(c, int) else str(c))
                           for k, c in zip(_COUNTS, cells, strict=True)},
                "steps": self.report(policy).to_dicts(), "notes": self.notes}

    def to_hail(self) -> hl.Table:
        """The table as a Hail Table keyed by ``s`` (missing values missing, not NaN)."""
        import hail as hl

        ht = hl.Table.from_pandas(self.table.to_pandas(), key="s")
        values = [c for c in self.table.columns if c != "s"]
        return ht.annotate(**{c: hl.or_missing(~hl.is_nan(hl.float64(ht[c])),
                                               hl.float64(ht[c])) for c in values})


def read_table(path: Path | str) -> pl.DataFrame:
    """The file as a DataFrame; text files are read as strings (``prepare`` converts)."""
    path = Path(path)
    if not path.is_file():
        raise PhenotypeInputError(f"phenotype table {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in _PARQUET:
            return pl.read_parquet(path)
        if suffix in _SEPARATORS:
            return pl.read_csv(path, separator=_SEPARATORS[suffix], infer_schema=False,
                               truncate_ragged_lines=False)
    except (pl.exceptions.PolarsError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise PhenotypeInputError(f"cannot read {path.name}: {first}",
                                  hint="a TSV/CSV needs one header line and the same number "
                                       "of fields on every line") from e
    raise PhenotypeInputError(f"{path.name}: unknown table format {suffix or '(no suffix)'!r}",
                              hint="use .tsv (tab-separated), .csv or .parquet")


def load(path: Path | str, *, sample_column: str, trait: str, covariates: list[str],
         genotype_samples: list[str], model: Model = "auto") -> Phenotypes:
    """``read_table`` then ``prepare`` (the file's name goes into every message)."""
    path = Path(path)
    return prepare(read_table(path), sample_column=sample_column, trait=trait,
                   covariates=covariates, genotype_samples=genotype_samples, model=model,
                   source=path.name, text=path.suffix.lower() in _SEPARATORS)


def prepare(table: pl.DataFrame, *, sample_column: str, trait: str, covariates: list[str],
            genotype_samples: list[str], model: Model = "auto", source: str = "the table",
            text: bool = False) -> Phenotypes:
    """Check ``table`` and match it to ``genotype_samples`` (see the module docstring).

    ``text``: the table came from a TSV/CSV, so row numbers are reported as file lines.
    """
    covariates = list(dict.fromkeys(covariates))
    columns = table.columns
    wanted = [sample_column, trait, *covariates]
    absent = [c for c in wanted if c not in columns]
    if absent:
        raise PhenotypeInputError(
            f"{source} has no column {', '.join(repr(c) for c in absent)}",
            hint="columns there: " + ", ".join(columns[:40]) + (" ..." if len(columns) > 40
                                                                else ""))
    if trait == sample_column or sample_column in covariates or trait in covariates:
        raise PhenotypeInputError(f"{source}: the sample column, the trait and the covariates "
                                  f"must be different columns (sample {sample_column!r}, trait "
                                  f"{trait!r}, covariates {', '.join(covariates)})")
    if sample_column != "s" and "s" in [trait, *covariates]:
        raise PhenotypeInputError(f"{source}: a trait or covariate may not be called 's' "
                                  "(the sample key)", hint="rename the column")
    if model not in ("auto", "linear", "logistic"):
        raise PhenotypeInputError(f"unknown model {model!r}",
                                  hint="use auto, linear or logistic")

    def where(i: int) -> str:
        return f"line {i + 2}" if text else f"row {i + 1}"

    ids = _sample_ids(table[sample_column], source, where)
    values = {c: _numeric(table[c], source, where) for c in [trait, *covariates]}
    notes = []
    if "female" in columns and "female" not in values and sample_column != "female":
        try:
            values["female"] = _numeric(table["female"], source, where)
        except PhenotypeInputError as e:
            notes.append(f"column 'female' is not boolean or 0/1 ({e.message}); the genetic "
                         "sex check in QC is skipped")
    df = pl.DataFrame({"s": ids, **values})

    in_genotypes = set(genotype_samples)
    matched = df.filter(pl.col("s").is_in(list(in_genotypes)))
    if matched.height == 0:
        raise PhenotypeInputError(
            f"none of the {df.height:,} sample ids in column {sample_column!r} of {source} is "
            f"a sample of the genotypes ({len(in_genotypes):,} samples); e.g. table: "
            f"{', '.join(df['s'].head(3).to_list())}; genotypes: "
            f"{', '.join(sorted(in_genotypes)[:3])}",
            hint="the sample column must hold the VCF's sample names (its #CHROM line) or "
                 "the .fam IIDs; choose it with --sample-column")
    analysed = matched.filter(pl.col(trait).is_not_null())
    y = analysed[trait]
    if analysed.height == 0:
        raise PhenotypeInputError(
            f"trait {trait!r} is missing for all {matched.height:,} samples of {source} that "
            "are in the genotypes", hint="check the column, or the missing-value codes "
                                         f"({', '.join(repr(m) for m in MISSING[1:])} are missing)")
    levels = y.unique()
    if levels.len() < 2:
        raise PhenotypeInputError(
            f"trait {trait!r} has no variance: all {analysed.height:,} samples with it (in the "
            f"genotypes) have the value {levels[0]:g}",
            hint="a trait needs at least two values (cases and controls for a binary one)")
    zero_one = bool(levels.is_in([0.0, 1.0]).all())
    if model == "logistic" and not zero_one:
        raise PhenotypeInputError(f"model logistic needs a boolean or 0/1 trait; {trait!r} has "
                                  f"values such as {', '.join(f'{v:g}' for v in levels[:4])}",
                                  hint="use --model linear for a quantitative trait")
    missing_cov = analysed.select(pl.any_horizontal(pl.col(c).is_null() for c in covariates)
                                  .sum()).item() if covariates else 0
    counts = {"table_rows": df.height, "genotype_samples": len(in_genotypes),
              "matched": matched.height, "table_only": df.height - matched.height,
              "genotype_only": len(in_genotypes) - matched.height,
              "missing_trait": matched.height - analysed.height,
              "missing_covariates": int(missing_cov or 0), "analysed": analysed.height}
    return Phenotypes(analysed, trait, covariates, zero_one and model != "linear", counts,
                      source, sample_column, notes)


def _sample_ids(col: pl.Series, source: str, where) -> pl.Series:
    ids = col.cast(pl.Utf8).str.strip_chars()
    empty = ids.is_null() | (ids == "")
    if empty.any():
        first = int(empty.arg_max())
        raise PhenotypeInputError(f"{source}: {int(empty.sum()):,} row(s) have no sample id in "
                                  f"column {col.name!r} (first at {where(first)})",
                                  hint="every row needs the id of its sample")
    dup = ids.filter(ids.is_duplicated())
    if dup.len():
        examples = ", ".join(dup.unique(maintain_order=True).head(3).to_list())
        raise PhenotypeInputError(
            f"{source}: column {col.name!r} has {dup.len() - dup.n_unique():,} duplicate "
            f"sample id(s) ({dup.n_unique():,} ids appear more than once, e.g. {examples})",
            hint="one row per sample: remove or merge the repeated rows")
    return ids.alias("s")


def _numeric(col: pl.Series, source: str, where) -> pl.Series:
    """Float64: booleans as 1.0/0.0, numbers as they are, missing codes as null."""
    name = col.name
    if col.dtype == pl.Boolean or col.dtype.is_numeric():
        out = col.cast(pl.Float64)
        return out.fill_nan(None).alias(name)
    if col.dtype not in (pl.Utf8, pl.Categorical):
        raise PhenotypeInputError(f"{source}: column {name!r} has type {col.dtype}, not a "
                                  "number or a boolean",
                                  hint="traits and covariates must be numeric or true/false")
    text = col.cast(pl.Utf8).str.strip_chars()
    text = pl.select(pl.when(text.is_in(list(MISSING))).then(None).otherwise(text)).to_series()
    lower = text.str.to_lowercase()
    mapped = pl.select(pl.when(lower == "true").then(pl.lit("1"))
                       .when(lower == "false").then(pl.lit("0"))
                       .otherwise(text)).to_series()
    out = mapped.cast(pl.Float64, strict=False)
    bad = out.is_null() & text.is_not_null()
    if bad.any():
        i = int(bad.arg_max())
        raise PhenotypeInputError(
            f"{source}: column {name!r} is not numeric or boolean: {where(i)} has "
            f"{text[i]!r} ({int(bad.sum()):,} such value(s))",
            hint="use numbers, true/false or 1/0; leave missing values empty or NA")
    return out.fill_nan(None).alias(name)

"""Bring-your-own phenotype tables: reading, type checks, boolean coding, sample matching."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from cohort.privacy import SmallCellPolicy
from genomics.phenotypes import load, prepare, read_table
from workbench.errors import PhenotypeInputError, UsageError

SAMPLES = [f"S{i:03d}" for i in range(40)]


def table(n: int = 30, **extra) -> pl.DataFrame:
    return pl.DataFrame({"IID": SAMPLES[:n], "ldl": [f"{2 + i / 10}" for i in range(n)],
                         "age": [str(40 + i) for i in range(n)], **extra})


def test_tsv_csv_and_parquet_give_the_same_table(tmp_path):
    df = table(statin=["TRUE", "False", "1", "0", "true", "FALSE"] * 5)
    df.write_csv(tmp_path / "p.tsv", separator="\t")
    df.write_csv(tmp_path / "p.csv")
    typed = df.with_columns(pl.col("ldl", "age").cast(pl.Float64),
                            statin=pl.col("statin").str.to_lowercase().is_in(["true", "1"]))
    typed.write_parquet(tmp_path / "p.parquet")
    got = [load(tmp_path / f"p.{ext}", sample_column="IID", trait="ldl",
                covariates=["age", "statin"], genotype_samples=SAMPLES)
           for ext in ("tsv", "csv", "parquet")]
    assert got[0].table["statin"].to_list() == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0] * 5
    assert got[0].table.schema == {"s": pl.Utf8, "ldl": pl.Float64, "age": pl.Float64,
                                   "statin": pl.Float64}
    for g in got[1:]:
        assert_frame_equal(g.table, got[0].table)
    assert got[0].binary is False and got[0].counts["analysed"] == 30


def test_boolean_and_zero_one_covariates_are_the_same(tmp_path):
    flags = [i % 3 == 0 for i in range(30)]
    a = prepare(table(flag=pl.Series(flags)), sample_column="IID", trait="ldl",
                covariates=["flag"], genotype_samples=SAMPLES)
    b = prepare(table(flag=[str(int(f)) for f in flags]), sample_column="IID", trait="ldl",
                covariates=["flag"], genotype_samples=SAMPLES)
    assert_frame_equal(a.table, b.table)


def test_match_counts_and_missing_trait():
    df = table(35).with_columns(pl.Series("IID", [*SAMPLES[5:40]]),
                                pl.Series("ldl", ["NA", "", ".", *["3.0", "4.5"] * 16]))
    p = prepare(df, sample_column="IID", trait="ldl", covariates=[],
                genotype_samples=SAMPLES[:30] + ["X1", "X2"])
    assert p.counts == {"table_rows": 35, "genotype_samples": 32, "matched": 25,
                        "table_only": 10, "genotype_only": 7, "missing_trait": 3,
                        "missing_covariates": 0, "analysed": 22}
    assert p.table.height == 22 and p.table["ldl"].null_count() == 0


def test_counts_leave_through_the_small_cell_policy():
    df = table(30).with_columns(pl.Series("ldl", ["NA"] * 3 + ["2.5", "3"] * 13 + ["4"]))
    p = prepare(df, sample_column="IID", trait="ldl", covariates=["age"],
                genotype_samples=SAMPLES[:30])
    out = p.to_json(SmallCellPolicy(threshold=20))
    assert out["counts"]["missing_trait"] == "< 20"
    # complementary suppression: 27 analysed would give the 3 back (30 - 27)
    assert out["counts"]["analysed"] == "suppressed"
    assert out["counts"]["table_rows"] == 30 and out["counts"]["genotype_only"] == 0
    assert [s["step"] for s in out["steps"]] == ["rows in the phenotype table",
                                                 "sample in the genotypes", "trait not missing"]
    assert out["steps"][2]["lost"] == "< 20"


def test_binary_trait_is_detected_and_model_can_be_forced():
    case = ["1", "0", "true", "FALSE", "0", "1"] * 5
    p = prepare(table(case=case), sample_column="IID", trait="case", covariates=["age"],
                genotype_samples=SAMPLES)
    assert p.binary
    assert not prepare(table(case=case), sample_column="IID", trait="case", covariates=[],
                       genotype_samples=SAMPLES, model="linear").binary
    with pytest.raises(PhenotypeInputError, match="model logistic needs a boolean or 0/1"):
        prepare(table(), sample_column="IID", trait="ldl", covariates=[],
                genotype_samples=SAMPLES, model="logistic")


def test_missing_columns_are_listed():
    with pytest.raises(PhenotypeInputError, match="no column 'bmi', 'sexx'") as info:
        prepare(table(), sample_column="IID", trait="bmi", covariates=["age", "sexx"],
                genotype_samples=SAMPLES, source="p.tsv")
    assert "IID, ldl, age" in info.value.hint
    assert isinstance(info.value, UsageError)


def test_duplicate_and_empty_sample_ids():
    df = table().with_columns(pl.Series("IID", SAMPLES[:27] + ["S000", "S000", "S001"]))
    with pytest.raises(PhenotypeInputError, match=r"3 duplicate sample id\(s\) \(2 ids appear "
                                                  r"more than once, e.g. S000, S001\)"):
        prepare(df, sample_column="IID", trait="ldl", covariates=[], genotype_samples=SAMPLES)
    df = table().with_columns(pl.Series("IID", SAMPLES[:29] + [""]))
    with pytest.raises(PhenotypeInputError, match=r"1 row\(s\) have no sample id .*line 31"):
        prepare(df, sample_column="IID", trait="ldl", covariates=[], genotype_samples=SAMPLES,
                text=True)


def test_non_numeric_value_is_named_with_its_line(tmp_path):
    df = table().with_columns(pl.Series("age", [str(i) for i in range(29)] + ["forty"]))
    df.write_csv(tmp_path / "p.tsv", separator="\t")
    with pytest.raises(PhenotypeInputError,
                       match=r"p.tsv: column 'age' is not numeric or boolean: line 31 has "
                             r"'forty' \(1 such value\(s\)\)"):
        load(tmp_path / "p.tsv", sample_column="IID", trait="ldl", covariates=["age"],
             genotype_samples=SAMPLES)


def test_date_column_is_refused():
    df = table().with_columns(pl.lit("2020-01-01").str.to_date().alias("when"))
    with pytest.raises(PhenotypeInputError, match="column 'when' has type Date"):
        prepare(df, sample_column="IID", trait="ldl", covariates=["when"],
                genotype_samples=SAMPLES)


def test_no_overlap_all_missing_and_no_variance():
    with pytest.raises(PhenotypeInputError, match="none of the 30 sample ids in column 'IID'"):
        prepare(table(), sample_column="IID", trait="ldl", covariates=[],
                genotype_samples=["A", "B"])
    df = table().with_columns(pl.lit("NA").alias("ldl"))
    with pytest.raises(PhenotypeInputError, match="'ldl' is missing for all 30 samples"):
        prepare(df, sample_column="IID", trait="ldl", covariates=[], genotype_samples=SAMPLES)
    df = table().with_columns(pl.lit("3.5").alias("ldl"))
    with pytest.raises(PhenotypeInputError, match="no variance: all 30 samples .* value 3.5"):
        prepare(df, sample_column="IID", trait="ldl", covariates=[], genotype_samples=SAMPLES)


def test_female_column_is_passed_on_when_usable():
    p = prepare(table(female=["true", "false"] * 15), sample_column="IID", trait="ldl",
                covariates=[], genotype_samples=SAMPLES)
    assert p.table.columns == ["s", "ldl", "female"]
    q = prepare(table(female=["F", "M"] * 15), sample_column="IID", trait="ldl",
                covariates=[], genotype_samples=SAMPLES)
    assert q.table.columns == ["s", "ldl"] and "sex check in QC is skipped" in q.notes[0]


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "p.xlsx").write_text("x")
    with pytest.raises(PhenotypeInputError, match="unknown table format '.xlsx'"):
        read_table(tmp_path / "p.xlsx")
    with pytest.raises(PhenotypeInputError, match="does not exist"):
        read_table(tmp_path / "nope.tsv")
    (tmp_path / "ragged.csv").write_text("IID,ldl\na,1\nb,2,3\n")
    with pytest.raises(PhenotypeInputError, match="cannot read ragged.csv"):
        read_table(tmp_path / "ragged.csv")

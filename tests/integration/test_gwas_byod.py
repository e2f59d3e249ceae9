"""Bring your own data: `workbench gwas --vcf/--bfile --phenotypes` against the release path,
and bad genotype input that gets past the pre-check but not past Hail."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.errors import GenotypeInputError, WorkbenchError

pytestmark = pytest.mark.java
ROOT = Path(__file__).resolve().parents[2]


def test_bad_line_deep_in_a_vcf_names_the_file_not_a_jvm_trace(hail_session, tmp_path):
    """QUAL 'abc' on line 1,504: the pre-check reads 1,000 lines, Hail finds it."""
    from genomics.store import import_vcf, store_dir

    lines = ["##fileformat=VCFv4.2", "##FORMAT=<ID=GT,Number=1,Type=String,Description=\"GT\">",
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ts1\ts2"]
    for i in range(1_500):
        qual = "abc" if i == 1_500 - 1 else "."
        lines.append(f"chr1\t{100 + i}\t.\tA\tC\t{qual}\tPASS\t.\tGT\t0/1\t1/1")
    vcf = tmp_path / "deep_bad.vcf"
    vcf.write_text("\n".join(lines) + "\n")
    before = set(store_dir().glob("*"))
    with pytest.raises(GenotypeInputError) as info:
        import_vcf(vcf)
    err = info.value
    assert isinstance(err, WorkbenchError)
    assert "Hail could not import deep_bad.vcf" in err.message
    assert 'For input string: "abc"' in err.message
    assert "offending line" in err.message and "chr1 1599 . A C abc" in err.message
    assert "Java stack trace" not in str(err) and "\tat " not in str(err)
    assert type(err.__cause__).__name__ == "FatalError"
    assert set(store_dir().glob("*")) == before          # nothing half-written is left

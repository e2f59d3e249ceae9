"""The VCF/PLINK pre-check: each malformation gets a GenotypeInputError naming file and line.

Tiny VCFs are written by hand, as text, plain gzip or BGZF (pysam's writer, the one the
synthetic release uses); no Java.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pysam
import pytest

from genomics.vcf_check import BGZF_EOF, check_plink, check_vcf, has_bgzf_eof
from workbench.errors import GenotypeInputError, UsageError

HEADER = ["##fileformat=VCFv4.2", "##contig=<ID=chr1>",
          '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
          "#CHROM POS ID REF ALT QUAL FILTER INFO FORMAT s1 s2 s3"]
ROWS = [f"chr1 {100 + 10 * i} . A G 50 PASS . GT 0/1 1|1 ./." for i in range(5)]


def _text(lines: list[str]) -> str:
    return "".join(line.replace(" ", "\t") + "\n" for line in lines)


def write(path: Path, lines: list[str], *, how: str = "text") -> Path:
    data = _text(lines).encode()
    if how == "text":
        path.write_bytes(data)
    elif how == "gzip":
        path.write_bytes(gzip.compress(data))
    else:                                   # bgzip
        w = pysam.libcbgzf.BGZFile(str(path), "wb")
        w.write(data)
        w.close()
    return path


def bad(tmp_path: Path, lines: list[str], *, name: str = "x.vcf", how: str = "text",
        **kw) -> GenotypeInputError:
    path = write(tmp_path / name, lines, how=how)
    with pytest.raises(GenotypeInputError) as info:
        check_vcf(path, **kw)
    err = info.value
    assert isinstance(err, UsageError)          # bad input: exit code 2 in the CLI
    assert name in err.message and err.hint     # names the file, says what to do
    return err


@pytest.mark.parametrize("how,name", [("text", "ok.vcf"), ("gzip", "ok.vcf.gz"),
                                      ("bgzip", "ok.vcf.bgz")])
def test_a_good_vcf_passes_in_every_compression(tmp_path, how, name):
    s = check_vcf(write(tmp_path / name, HEADER + ROWS, how=how))
    assert s.samples == ["s1", "s2", "s3"]
    assert s.header_lines == 4 and s.data_lines_checked == 5


def test_only_the_first_lines_are_read(tmp_path):
    rows = [*ROWS, "chr1 1 . A G 50 PASS . GT 0/1 0/1 0/1"]     # unsorted, but line 9
    assert check_vcf(write(tmp_path / "x.vcf", HEADER + rows), max_lines=5).data_lines_checked == 5
    assert "line 10" in bad(tmp_path, HEADER + rows).message


def test_missing_fileformat_line(tmp_path):
    err = bad(tmp_path, HEADER[1:] + ROWS)
    assert "line 1" in err.message and "##fileformat=VCF" in err.message


def test_missing_chrom_header_line(tmp_path):
    err = bad(tmp_path, HEADER[:3] + ROWS)
    assert "line 4" in err.message and "#CHROM" in err.message


def test_header_with_spaces_instead_of_tabs(tmp_path):
    path = tmp_path / "x.vcf"
    path.write_text(_text(HEADER[:3]) + HEADER[3] + "\n" + _text(ROWS))
    with pytest.raises(GenotypeInputError, match="line 4: the column header"):
        check_vcf(path)


def test_gt_not_declared_in_the_header(tmp_path):
    err = bad(tmp_path, [h for h in HEADER if "FORMAT=<ID=GT" not in h] + ROWS)
    assert "declares no GT field" in err.message and "##FORMAT=<ID=GT" in err.hint


def test_duplicate_sample_ids(tmp_path):
    err = bad(tmp_path, [*HEADER[:3], HEADER[3].replace("s3", "s1"), *ROWS])
    assert "1 duplicate sample id(s), e.g. s1" in err.message


def test_wrong_column_count(tmp_path):
    rows = [*ROWS[:2], "chr1 125 . A G 50 PASS . GT 0/1 0/1", *ROWS[2:]]
    err = bad(tmp_path, HEADER + rows)
    assert "line 7 has 11 tab-separated columns; the header (line 4) has 12" in err.message


def test_non_numeric_pos(tmp_path):
    err = bad(tmp_path, [*HEADER, ROWS[0], "chr1 12x . A G 50 PASS . GT 0/1 0/1 0/1"])
    assert "line 6: POS '12x' is not a positive integer" in err.message


def test_non_numeric_qual_in_the_first_lines(tmp_path):
    err = bad(tmp_path, [*HEADER, "chr1 100 . A G high PASS . GT 0/1 0/1 0/1"])
    assert "line 5: QUAL 'high'" in err.message


def test_triploid_call(tmp_path):
    err = bad(tmp_path, [*HEADER, ROWS[0], "chr1 200 . A G 50 PASS . GT 0/1 0/1/1 0/0"])
    assert "line 6: sample s2 has GT '0/1/1' (ploidy 3)" in err.message


def test_call_refers_to_an_allele_alt_lacks(tmp_path):
    err = bad(tmp_path, [*HEADER, "chr1 200 . A G 50 PASS . GT:DP 0/1:3 0/0:4 0/2:5"])
    assert "sample s3 has GT '0/2' (allele 2 but ALT lists 1)" in err.message


def test_multi_allelic_and_haploid_calls_pass(tmp_path):
    rows = ["chr1 200 . A G,T 50 PASS . GT:DP 0/2:3 1:4 .:5"]
    assert check_vcf(write(tmp_path / "x.vcf", HEADER + rows)).data_lines_checked == 1


def test_unsorted_positions(tmp_path):
    rows = [ROWS[0], ROWS[2], ROWS[1]]
    err = bad(tmp_path, HEADER + rows)
    assert "line 7: chr1:110 comes after chr1:120" in err.message
    assert "bcftools sort" in err.hint


def test_contig_that_comes_back(tmp_path):
    rows = [ROWS[0], "chr2 5 . A G 50 PASS . GT 0/1 0/1 0/1", ROWS[1]]
    assert "contig chr1 appears again" in bad(tmp_path, HEADER + rows).message


def test_grch37_contig_names_on_grch38(tmp_path):
    rows = ["1 100 . A G 50 PASS . GT 0/1 0/1 0/1"]
    err = bad(tmp_path, HEADER + rows)
    assert "contig '1' is not a GRCh38 name (GRCh38 says chr1)" in err.message
    assert check_vcf(tmp_path / "x.vcf", reference="GRCh37").data_lines_checked == 1


def test_truncated_bgzip(tmp_path):
    many = [f"chr1 {100 + i} . A G 50 PASS . GT 0/1 1|1 ./." for i in range(20_000)]
    good = write(tmp_path / "good.vcf.bgz", HEADER + many, how="bgzip")
    data = good.read_bytes()
    assert data.endswith(BGZF_EOF) and has_bgzf_eof(good)
    cut = tmp_path / "cut.vcf.bgz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(GenotypeInputError, match="cut.vcf.bgz is truncated") as info:
        check_vcf(cut)
    err = info.value
    assert "28-byte end-of-file block" in err.message and "copy" in err.hint


def test_truncated_plain_gzip_header(tmp_path):
    full = gzip.compress(_text(HEADER + ROWS).encode())
    path = tmp_path / "cut.vcf.gz"
    path.write_bytes(full[:30])
    with pytest.raises(GenotypeInputError, match="cut.vcf.gz: the compressed data ends"):
        check_vcf(path)


def test_compression_and_name_disagree(tmp_path):
    bad(tmp_path, HEADER + ROWS, name="x.vcf.gz", how="text")
    err = bad(tmp_path, HEADER + ROWS, name="y.vcf", how="gzip")
    assert "gzip-compressed but its name" in err.message


def test_no_samples_and_no_variants(tmp_path):
    sites = ["##fileformat=VCFv4.2", "#CHROM POS ID REF ALT QUAL FILTER INFO"]
    assert "no sample columns" in bad(tmp_path, [*sites, "chr1 1 . A G . . ."]).message
    assert "no variant lines" in bad(tmp_path, HEADER, name="e.vcf").message


def test_windows_line_endings(tmp_path):
    path = tmp_path / "crlf.vcf"
    path.write_bytes(_text(HEADER + ROWS).replace("\n", "\r\n").encode())
    with pytest.raises(GenotypeInputError, match="line 1 ends in CR LF"):
        check_vcf(path)


def test_missing_file(tmp_path):
    with pytest.raises(GenotypeInputError, match="does not exist"):
        check_vcf(tmp_path / "nope.vcf.bgz")


# --- PLINK -------------------------------------------------------------------------------

def write_plink(prefix: Path, *, samples: int = 5, variants: int = 3) -> Path:
    bed = prefix.with_suffix(".bed")
    bed.write_bytes(b"\x6c\x1b\x01" + bytes(variants * (-(-samples // 4))))
    prefix.with_suffix(".fam").write_text(
        "".join(f"f{i} s{i} 0 0 1 -9\n" for i in range(samples)))
    prefix.with_suffix(".bim").write_text(
        "".join(f"1 rs{i} 0 {100 + i} G A\n" for i in range(variants)))
    return bed


def test_good_plink_passes(tmp_path):
    s = check_plink(write_plink(tmp_path / "x"))
    assert s.samples == [f"s{i}" for i in range(5)] and s.variants == 3


def test_truncated_bed(tmp_path):
    bed = write_plink(tmp_path / "x")
    bed.write_bytes(bed.read_bytes()[:-1])
    with pytest.raises(GenotypeInputError, match=r"x.bed has 8 bytes; 3 variants \(.bim\) x 5 "
                                                 r"samples \(.fam\) need 9"):
        check_plink(bed)


def test_bed_without_magic_bytes(tmp_path):
    bed = write_plink(tmp_path / "x")
    bed.write_bytes(b"\x6c\x1b\x00" + bed.read_bytes()[3:])
    with pytest.raises(GenotypeInputError, match="sample-major") as info:
        check_plink(bed)
    assert "not a PLINK 1 variant-major" in info.value.message


def test_fam_and_bim_columns_and_duplicates(tmp_path):
    bed = write_plink(tmp_path / "x")
    fam = bed.with_suffix(".fam")
    fam.write_text(fam.read_text().replace("f1 s1", "f1 s0"))
    with pytest.raises(GenotypeInputError, match=r"x.fam \(IID, column 2\): 1 duplicate"):
        check_plink(bed)
    write_plink(tmp_path / "x")
    bed.with_suffix(".bim").write_text("1 rs0 0 100 G\n1 rs1 0 101 G A\n1 rs2 0 102 G A\n")
    with pytest.raises(GenotypeInputError, match="x.bim line 1 has 5 columns"):
        check_plink(bed)
    bed.with_suffix(".fam").unlink()
    with pytest.raises(GenotypeInputError, match="x.fam does not exist"):
        check_plink(bed)


def test_import_refuses_a_bad_file_before_starting_hail(tmp_path, monkeypatch):
    """import_vcf / import_plink pre-check the file before the JVM starts (a 15-20 s start
    just to report a bad header): Hail is never asked to start here."""
    from genomics import session, store

    def no_jvm(**_kw):
        raise AssertionError("Hail was started for a file that fails its pre-check")
    monkeypatch.setattr(session, "init", no_jvm)
    vcf = write(tmp_path / "bad.vcf", HEADER[1:] + ROWS)          # no ##fileformat line
    with pytest.raises(GenotypeInputError, match="bad.vcf"):
        store.import_vcf(vcf)
    bed = tmp_path / "x.bed"
    bed.write_bytes(b"not plink")
    (tmp_path / "x.bim").write_text("1\trs1\t0\t100\tA\tG\n")
    (tmp_path / "x.fam").write_text("f1 s1 0 0 1 -9\n")
    with pytest.raises(GenotypeInputError, match="x.bed"):
        store.import_plink(bed)

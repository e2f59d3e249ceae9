"""National health-screening extracts (CSV, Korean headers) -> ``health_screening`` rows.

The NHIS screening extracts name columns in Korean. Headers are matched after removing
blanks and folding case, against the names below (the first is the one documented, the
others are spellings seen in public extracts). Columns not listed (기준년도, 시도코드,
혈색소, 요단백, ...) are ignored and named in the result.

==========================  ==========================  ===============  ==========
release column              Korean header (aliases)     unit             accepted
==========================  ==========================  ===============  ==========
person_id                   개인일련번호 (가입자일련번호)   -                whole number
screening_date              검진일자 (수검일자)             YYYYMMDD,        a date
                                                        YYYY-MM-DD or .
height_cm                   신장 (신장(5cm단위), 키)        cm               100-230
weight_kg                   체중 (체중(5kg단위), 몸무게)    kg               20-250
bmi                         체질량지수 (BMI)              kg/m2            10-80
waist_cm                    허리둘레                      cm               40-200
sbp                         수축기혈압                    mmHg             50-300
dbp                         이완기혈압                    mmHg             30-200
fasting_glucose             식전혈당(공복혈당) (공복혈당)   mg/dL            20-1000
total_cholesterol           총콜레스테롤                  mg/dL            30-1000
ldl_cholesterol             LDL콜레스테롤                 mg/dL            5-700
hdl_cholesterol             HDL콜레스테롤                 mg/dL            5-300
triglycerides               트리글리세라이드 (중성지방)     mg/dL            10-5000
egfr                        사구체여과율 (eGFR)           mL/min/1.73m2    1-250
smoking_status              흡연상태                      1 never, 2       1, 2, 3
                                                        former, 3 current
drinking_days_per_week      주당음주일수 (음주일수)         days a week      0-7
exercise_days_per_week      주당운동일수 (운동일수)         days a week      0-7
==========================  ==========================  ===============  ==========

``person_id`` and ``screening_date`` are required; other columns may be absent (null).
When the file has no 체질량지수 the BMI is computed from height and weight (one decimal).
A row with an empty key, a value that does not parse or lies outside its range is
*rejected*, reported with its line number (1-based, the header is line 1), the column as
written in the header and the value; the other rows load. Files are UTF-8 (with or
without BOM) or CP949/EUC-KR (tried when UTF-8 fails).

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
>>> _ = p.write_text("개인일련번호,검진일자,수축기 혈압,이완기혈압,신장,체중\\n"
...                  "1,20230405,128,82,170,65\\n2,2023-04-06,abc,80,160,50\\n")
>>> s = read_screening(p)
>>> s.table.num_rows, s.table["bmi"].to_pylist(), s.rejected[0]["line"]
(1, [22.5], 3)
>>> s.rejected[0]["reason"]
"수축기 혈압: 'abc' is not a number"
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from workbench.errors import ReleaseError, UsageError
from workbench.schema import TABLES

# column, headers (first documented), kind, range (inclusive)
COLUMNS: tuple[tuple[str, tuple[str, ...], str, tuple[float, float] | None], ...] = (
    ("person_id", ("개인일련번호", "가입자일련번호", "수진자일련번호"), "id", None),
    ("screening_date", ("검진일자", "수검일자", "건강검진일자"), "date", None),
    ("height_cm", ("신장", "신장(5cm단위)", "키"), "num", (100, 230)),
    ("weight_kg", ("체중", "체중(5kg단위)", "몸무게"), "num", (20, 250)),
    ("bmi", ("체질량지수", "bmi"), "num", (10, 80)),
    ("waist_cm", ("허리둘레",), "num", (40, 200)),
    ("sbp", ("수축기혈압",), "num", (50, 300)),
    ("dbp", ("이완기혈압",), "num", (30, 200)),
    ("fasting_glucose", ("식전혈당(공복혈당)", "공복혈당", "식전혈당"), "num", (20, 1000)),
    ("total_cholesterol", ("총콜레스테롤",), "num", (30, 1000)),
    ("ldl_cholesterol", ("ldl콜레스테롤",), "num", (5, 700)),
    ("hdl_cholesterol", ("hdl콜레스테롤",), "num", (5, 300)),
    ("triglycerides", ("트리글리세라이드", "중성지방"), "num", (10, 5000)),
    ("egfr", ("사구체여과율", "신사구체여과율", "egfr"), "num", (1, 250)),
    ("smoking_status", ("흡연상태",), "int", (1, 3)),
    ("drinking_days_per_week", ("주당음주일수", "음주일수"), "int", (0, 7)),
    ("exercise_days_per_week", ("주당운동일수", "운동일수"), "int", (0, 7)),
)
REQUIRED = ("person_id", "screening_date")


def _norm(header: str) -> str:
    return "".join(header.split()).casefold()


HEADER_TO_COLUMN: dict[str, str] = {_norm(h): col for col, hs, _, _ in COLUMNS for h in hs}


@dataclass
class Screening:
    """Rows read from one extract, and what was rejected or ignored."""

    path: Path
    table: pa.Table
    rejected: list[dict[str, Any]] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)   # header -> release column
    ignored: list[str] = field(default_factory=list)
    encoding: str = "utf-8"
    rows_read: int = 0
    lines: list[int] = field(default_factory=list)   # the line of each row of ``table``


def _decode(path: Path, encoding: str | None) -> tuple[str, str]:
    data = path.read_bytes()
    for enc in ([encoding] if encoding else ["utf-8-sig", "cp949"]):
        try:
            return data.decode(enc), "utf-8" if enc == "utf-8-sig" else enc
        except UnicodeDecodeError:
            continue
        except LookupError as e:
            raise UsageError(f"unknown encoding {encoding!r}",
                             hint="use utf-8 or cp949") from e
    raise ReleaseError(f"{path}: neither UTF-8 nor CP949 text",
                       hint="convert the file to UTF-8 (iconv -f EUC-KR -t UTF-8)")


def read_screening(path: Path | str, *, encoding: str | None = None) -> Screening:
    """Read one screening extract (see the module docstring for columns and rules)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path} is not a file", hint="give the screening extract CSV file")
    text, enc = _decode(path, encoding)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ReleaseError(f"{path}, line 1: no header line",
                           hint="the first line must name the columns (개인일련번호, ...)")
    delimiter = "\t" if lines[0].count("\t") > lines[0].count(",") else ","
    header = next(csv.reader([lines[0]], delimiter=delimiter))
    columns, ignored, seen = {}, [], {}
    for h in header:
        col = HEADER_TO_COLUMN.get(_norm(h))
        if col is None:
            ignored.append(h)
        elif col in seen:
            raise ReleaseError(f"{path}, line 1: {seen[col]!r} and {h!r} both give {col}",
                               hint="keep one of the two columns")
        else:
            columns[h], seen[col] = col, h
    missing = [c for c in REQUIRED if c not in seen]
    if missing:
        names = ", ".join(next(hs[0] for col, hs, _, _ in COLUMNS if col == c) for c in missing)
        raise ReleaseError(f"{path}, line 1: no {names} column (header: {', '.join(header)})",
                           hint="the extract must identify the person and the screening date")
    numbers = [i for i, ln in enumerate(lines[1:], start=2) if ln.strip()]
    if len(numbers) < len(lines) - 1:   # blank lines: skipped (polars would read null rows)
        text = "\n".join([lines[0], *(lines[i - 1] for i in numbers)]) + "\n"
    raw = pl.read_csv(io.StringIO(text), separator=delimiter, infer_schema=False,
                      has_header=True, new_columns=[f"c{i}" for i in range(len(header))])
    rows_read = raw.height
    index = {h: f"c{i}" for i, h in enumerate(header)}
    exprs, problems = [], []
    spec = {col: (kind, rng) for col, _, kind, rng in COLUMNS}
    for h, col in columns.items():
        kind, rng = spec[col]
        text_col = pl.col(index[h]).str.strip_chars()
        text_col = pl.when(text_col == "").then(None).otherwise(text_col)
        if kind == "date":
            value = text_col.str.replace_all(r"[-./]", "").str.strptime(
                pl.Date, "%Y%m%d", strict=False)
        elif kind in ("id", "int"):
            num = text_col.cast(pl.Float64, strict=False)
            value = pl.when(num == num.round()).then(num).otherwise(None).cast(pl.Int64)
        else:
            value = text_col.cast(pl.Float64, strict=False)
        exprs += [text_col.alias(f"raw_{col}"), value.alias(col)]
        what = {"date": "a date (YYYYMMDD)", "id": "a whole number", "int": "a whole number",
                "num": "a number"}[kind]
        problems.append((pl.col(f"raw_{col}").is_not_null() & pl.col(col).is_null(),
                         pl.format(f"{h}: '{{}}' is not {what}", pl.col(f"raw_{col}"))))
        if rng is not None:
            lo, hi = rng
            out = pl.col(col).is_not_null() & ((pl.col(col) < lo) | (pl.col(col) > hi))
            problems.append((out, pl.format(f"{h}: {{}} is outside {lo:g}-{hi:g}",
                                            pl.col(f"raw_{col}"))))
        if col in REQUIRED:
            problems.append((pl.col(f"raw_{col}").is_null(),
                             pl.lit(f"{h}: empty, but every row needs it")))
    df = raw.with_row_index("row").select(["row", *exprs])
    reason = pl.when(problems[0][0]).then(problems[0][1])
    for cond, msg in problems[1:]:
        reason = reason.when(cond).then(msg)
    df = df.with_columns(reason.otherwise(None).alias("reason"))
    bad = df.filter(pl.col("reason").is_not_null())
    good = df.filter(pl.col("reason").is_null())
    if "bmi" not in seen and {"height_cm", "weight_kg"} <= set(seen):
        good = good.with_columns((pl.col("weight_kg") / (pl.col("height_cm") / 100) ** 2)
                                 .round(1).alias("bmi"))
    keep = [c for c in TABLES["health_screening"].names if c in good.columns]
    table = good.select(keep).to_arrow()
    table = pa.table({f.name: table[f.name].cast(f.type) if f.name in table.column_names
                      else pa.nulls(table.num_rows, f.type)
                      for f in TABLES["health_screening"]}, schema=TABLES["health_screening"])
    def line(r: int) -> int:   # one record a line (values with line breaks are not expected)
        return numbers[r] if r < len(numbers) else r + 2

    rejected = [{"file": path.name, "line": line(r), "reason": why}
                for r, why in zip(bad["row"].to_list(), bad["reason"].to_list(), strict=True)]
    return Screening(path, table, rejected, columns, ignored, enc, rows_read,
                     [line(r) for r in good["row"].to_list()])


def load_screening(files: list[Path] | Path, base: Path | str, out: Path | str, *,
                   encoding: str | None = None, force: bool = False) -> dict[str, Any]:
    """Add the rows of screening extracts to release ``base`` as a new version at ``out``
    (:func:`workbench.versions.new_version`); return its manifest.

    Besides the rejections of :func:`read_screening`, a row whose person is not in
    ``base`` is rejected, and a second row of the same person and date (in these files)
    too. The report (``screening_report.json`` and ``.txt``) is written inside the new
    release; the manifest's ``source`` counts rows read, loaded and rejected.
    """
    import json

    from workbench.versions import new_version, parent_tables

    files = [files] if isinstance(files, Path | str) else list(files)
    base = Path(base)
    manifest, parent = parent_tables(base)
    if "person" not in parent:
        raise ReleaseError(f"--base {base} has no person table",
                           hint="screening rows are linked to persons of the release")
    known = pl.from_arrow(parent["person"].select(["person_id"]))
    parts, rejected, info = [], [], []
    seen: dict[tuple[int, Any], str] = {}
    for f in files:
        s = read_screening(Path(f), encoding=encoding)
        rejected += s.rejected
        df = pl.from_arrow(s.table).with_columns(pl.Series("_line", s.lines, pl.Int64))
        ok = df["person_id"].is_in(known["person_id"].implode())
        for pid, ln in zip(df.filter(~ok)["person_id"].to_list(),
                           df.filter(~ok)["_line"].to_list(), strict=True):
            rejected.append({"file": s.path.name, "line": ln,
                             "reason": f"person_id {pid} is not in release "
                                       f"{manifest['release_id']}"})
        df = df.filter(ok)
        keep = []
        for pid, d, ln in zip(df["person_id"].to_list(), df["screening_date"].to_list(),
                              df["_line"].to_list(), strict=True):
            first = seen.get((pid, d))
            keep.append(first is None)
            if first is None:
                seen[(pid, d)] = f"{s.path.name}, line {ln}"
            else:
                rejected.append({"file": s.path.name, "line": ln, "reason":
                                 f"person {pid} screened on {d} again (first at {first})"})
        df = df.filter(pl.Series(keep, dtype=pl.Boolean))
        parts.append(df.drop("_line"))
        info.append({"file": s.path.name, "encoding": s.encoding, "rows": s.rows_read,
                     "loaded": df.height, "columns": s.columns, "ignored_columns": s.ignored})
    rows = pl.concat(parts) if parts else pl.DataFrame()
    counts = {"rows_read": sum(i["rows"] for i in info), "loaded": rows.height,
              "rejected": len(rejected)}
    body = {"counts": counts, "files": info, "rejected": rejected}
    text = [f"screening load: {counts['rows_read']:,} rows read, {counts['loaded']:,} loaded, "
            f"{counts['rejected']:,} rejected"]
    text += [f"  {r['file']}, line {r['line']}: {r['reason']}" for r in rejected[:200]]
    if len(rejected) > 200:
        text.append(f"  ... and {len(rejected) - 200} more in screening_report.json")
    source = {"format": "national health-screening CSV (Korean headers)", **counts,
              "files": info, "report": "screening_report.json"}
    return new_version(base, out, {"health_screening": rows.to_arrow()}, source=source,
                       force=force, data_kind="screening", files={
                           "screening_report.json": json.dumps(body, ensure_ascii=False,
                                                               indent=1, default=str).encode(),
                           "screening_report.txt": ("\n".join(text) + "\n").encode()})

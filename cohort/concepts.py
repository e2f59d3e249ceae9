"""The vocabulary: search concepts, resolve concept sets with provenance.

A concept set resolves to the concepts it includes (each item itself, its descendants
through ``concept_ancestor`` when asked, and source concepts that map to them when
``include_mapped``), minus what excluded items bring in. Every resolved concept carries
the item that brought it in. Resolutions are cached per release.

>>> import tempfile, pathlib
>>> from workbench import catalog
>>> from workbench.synth.build import build_release
>>> rel = pathlib.Path(tempfile.mkdtemp()) / "r"
>>> _ = build_release(rel, persons=200, genotyped=0, variants=0, seed=1, progress=False)
>>> cat = catalog.open(rel)
>>> from cohort.model import ConceptSet, ConceptItem
>>> r = resolve(cat, ConceptSet(name="T2D", items=[ConceptItem(vocabulary="KCD8", code="E11")]))
>>> sorted(r.frame["concept_code"].to_list())
['E11', 'E11.2', 'E11.3', 'E11.9']
>>> search(cat, "당뇨", vocabulary="KCD8")["concept_code"].to_list()[:2]
['E10', 'E10-E14']
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from cohort.errors import DefinitionError
from cohort.model import ConceptItem, ConceptSet
from workbench.catalog import Catalog

_CACHE: dict[tuple[str, str], Resolved] = {}


@dataclass(frozen=True)
class Resolved:
    """A resolved concept set: ``standard`` ids to match concept columns, ``source`` ids
    (mapped, non-standard) to match *_source_concept_id columns; ``frame`` for people."""

    standard: tuple[int, ...]
    source: tuple[int, ...]
    frame: pl.DataFrame


def _base_ids(cat: Catalog, item: ConceptItem, path: str) -> pl.DataFrame:
    if item.concept_id is not None:
        q = "select concept_id, concept_code from concept where concept_id = ?"
        df = cat.frame(q, [item.concept_id])
        what = f"concept_id {item.concept_id}"
    else:
        q = ("select concept_id, concept_code from concept "
             "where vocabulary_id = ? and concept_code = ?")
        df = cat.frame(q, [item.vocabulary, item.code])
        what = f"{item.vocabulary!s:.80} code {item.code!r:.80}"
    if df.is_empty():
        raise DefinitionError(f"unknown concept: {what} is not in the release's vocabulary",
                              path=path, hint="find codes with `cohort.concepts.search`")
    return df


def _need_vocabulary(cat: Catalog, table: str, what: str, flag: str, path: str) -> None:
    if not cat.has(table):
        raise DefinitionError(
            f"this release has no {table} table, so {what} cannot be resolved", path=path,
            hint=f"set {flag} to false, or load the vocabulary's {table.upper()} with the "
                 "release")


def _expand(cat: Catalog, item: ConceptItem, path: str) -> pl.DataFrame:
    base = _base_ids(cat, item, path)
    cid, code = int(base["concept_id"][0]), base["concept_code"][0]
    parts = [pl.DataFrame({"concept_id": [cid], "via": [f"{code} (itself)"]})]
    if item.include_descendants:
        _need_vocabulary(cat, "concept_ancestor", "descendants", "include_descendants", path)
        d = cat.frame("select descendant_concept_id as concept_id from concept_ancestor "
                      "where ancestor_concept_id = ? and descendant_concept_id <> ?",
                      [cid, cid])
        parts.append(d.with_columns(via=pl.lit(f"descendant of {code}")))
    frame = pl.concat([p.cast({"concept_id": pl.Int64}) for p in parts])
    if item.include_mapped:
        _need_vocabulary(cat, "concept_relationship", "mapped codes", "include_mapped", path)
        ids = frame["concept_id"].to_list()
        m = cat.frame("select distinct concept_id_1 as concept_id from concept_relationship "
                      "where relationship_id = 'Maps to' and concept_id_1 <> concept_id_2 "
                      "and list_contains(?, concept_id_2)", [ids])
        frame = pl.concat([frame, m.cast({"concept_id": pl.Int64}).with_columns(
            via=pl.lit(f"maps to {code} or a descendant"))])
    return frame


def resolve(cat: Catalog, concept_set: ConceptSet, *, path: str = "concepts") -> Resolved:
    """Resolve a concept set against a release's vocabulary (cached per release)."""
    key = (cat.release_id, concept_set.model_dump_json())
    if key in _CACHE:
        return _CACHE[key]
    include, exclude = [], []
    for i, item in enumerate(concept_set.items):
        frame = _expand(cat, item, f"{path}.items[{i}]")
        (exclude if item.exclude else include).append(frame)
    if not include:
        raise DefinitionError("a concept set needs at least one item that is not excluded",
                              path=path)
    inc = pl.concat(include).unique("concept_id", keep="first", maintain_order=True)
    if exclude:
        inc = inc.join(pl.concat(exclude).select("concept_id"), on="concept_id", how="anti")
    info = cat.frame("select concept_id, vocabulary_id, concept_code, concept_name, "
                     "concept_name_ko, standard_concept from concept "
                     "where list_contains(?, concept_id)", [inc["concept_id"].to_list()])
    frame = inc.join(info, on="concept_id", how="left").sort("concept_id")
    std = frame.filter(pl.col("standard_concept") == "S")["concept_id"].to_list()
    src = frame.filter(pl.col("standard_concept").is_null())["concept_id"].to_list()
    out = Resolved(tuple(std), tuple(src), frame.select(
        "concept_id", "vocabulary_id", "concept_code", "concept_name", "concept_name_ko",
        "standard_concept", "via"))
    _CACHE[key] = out
    return out


def search(cat: Catalog, text: str, *, vocabulary: str | None = None, limit: int = 20,
           offset: int = 0) -> pl.DataFrame:
    """Concepts whose code starts with ``text`` or whose English/Korean name contains it,
    with their number of descendants; codes first, then by code. Paged by limit/offset."""
    q = """
        select c.concept_id, c.vocabulary_id, c.concept_code, c.concept_name,
               c.concept_name_ko, c.concept_class_id, c.standard_concept,
               (select count(*) from concept_ancestor a
                 where a.ancestor_concept_id = c.concept_id
                   and a.descendant_concept_id <> c.concept_id) as descendants,
               starts_with(lower(c.concept_code), lower($text)) as code_match
        from concept c
        where (starts_with(lower(c.concept_code), lower($text))
               or contains(lower(c.concept_name), lower($text))
               or contains(c.concept_name_ko, $text))
          and ($vocab is null or c.vocabulary_id = $vocab)
        order by code_match desc, c.concept_code
        limit $limit offset $offset"""
    return cat.frame(q, {"text": text, "vocab": vocabulary, "limit": limit,
                         "offset": offset}).drop("code_match")

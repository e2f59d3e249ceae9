"""The synthetic release's vocabulary: schema, identity, hierarchy, mappings, names."""

from __future__ import annotations

import datetime as dt
import doctest
import re
from collections import defaultdict

import pyarrow as pa
import pytest

from workbench.schema import TABLES
from workbench.synth import vocabulary as vocab
from workbench.synth.vocabulary import concept_id, concept_name, descendants, vocabulary_tables

HANGUL = re.compile("[\uac00-\ud7a3]")

KCD8_LEAVES = [
    "E11.2", "E11.3", "E11.9", "E10.9", "I10", "N18.3", "N18.4", "N18.5", "N18.9", "E78.0",
    "E78.2", "E78.5", "I21.0", "I21.9", "I63.5", "I63.9", "I25.1", "I48.9", "I50.9", "C16.9",
    "C18.9", "C22.0", "C34.9", "C50.9", "C61", "C73", "J06.9", "J18.9", "J44.9", "J45.9",
    "K21.9", "K29.7", "M17.9", "M54.5", "F32.9", "F03", "G30.9", "G47.3", "E66.9", "R99",
]
ATC_INGREDIENTS = {
    "A10BA02": "metformin", "A10BK01": "dapagliflozin", "A10BH01": "sitagliptin",
    "A10AE04": "insulin glargine", "A10AB01": "insulin (human)", "C10AA01": "simvastatin",
    "C10AA05": "atorvastatin", "C10AA07": "rosuvastatin", "C09CA01": "losartan",
    "C08CA01": "amlodipine", "C03AA03": "hydrochlorothiazide", "C07AB02": "metoprolol",
    "B01AC06": "acetylsalicylic acid", "B01AC04": "clopidogrel", "B01AF01": "rivaroxaban",
    "A02BC01": "omeprazole", "M01AE01": "ibuprofen", "N02BE01": "paracetamol",
    "R03AK06": "salmeterol and fluticasone", "N06AB10": "escitalopram",
    "J01CA04": "amoxicillin", "H03AA01": "levothyroxine sodium", "N06DA02": "donepezil",
}
OMOP_FIXED = {
    ("Gender", "M"): 8507, ("Gender", "F"): 8532, ("Visit", "IP"): 9201,
    ("Visit", "OP"): 9202, ("Visit", "ER"): 9203, ("UCUM", "mg/dL"): 8840,
    ("UCUM", "%"): 8554, ("UCUM", "mm[Hg]"): 8876, ("UCUM", "kg"): 9529, ("UCUM", "cm"): 8582,
    ("UCUM", "kg/m2"): 9531, ("UCUM", "g/dL"): 8713, ("UCUM", "U/L"): 8645,
    ("UCUM", "mL/min/{1.73_m2}"): 720870,
}
LOINC_CODES = [
    "4548-4", "1558-6", "2093-3", "13457-7", "2085-9", "2571-8", "2160-0", "62238-1", "8480-6",
    "8462-4", "39156-5", "29463-7", "8302-2", "718-7", "1742-6", "1920-8",
]
SNOMED_PROCEDURES = [
    "73761001", "76009000", "302497006", "415070008", "33367005", "169069000", "609588000",
    "29303009",
]


@pytest.fixture(scope="module")
def tables() -> dict[str, pa.Table]:
    return vocabulary_tables()


@pytest.fixture(scope="module")
def concepts(tables) -> list[dict]:
    return tables["concept"].to_pylist()


@pytest.fixture(scope="module")
def by_id(concepts) -> dict[int, dict]:
    return {c["concept_id"]: c for c in concepts}


@pytest.fixture(scope="module")
def ancestry(tables) -> dict[tuple[int, int], tuple[int, int]]:
    return {(r["ancestor_concept_id"], r["descendant_concept_id"]):
            (r["min_levels_of_separation"], r["max_levels_of_separation"])
            for r in tables["concept_ancestor"].to_pylist()}


@pytest.fixture(scope="module")
def relationships(tables) -> set[tuple[int, int, str]]:
    rows = tables["concept_relationship"].to_pylist()
    return {(r["concept_id_1"], r["concept_id_2"], r["relationship_id"]) for r in rows}


# --- shape ---------------------------------------------------------------------------

def test_tables_match_release_schema_exactly(tables):
    assert set(tables) == {"concept", "concept_ancestor", "concept_relationship"}
    for name, table in tables.items():
        assert table.schema == TABLES[name], name
        assert table.num_rows > 0


def test_tables_are_sorted_by_their_id_columns(tables):
    ids = tables["concept"]["concept_id"].to_pylist()
    assert ids == sorted(ids)
    anc = tables["concept_ancestor"]
    keys = list(zip(anc["ancestor_concept_id"].to_pylist(),
                    anc["descendant_concept_id"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    rel = tables["concept_relationship"]
    keys = list(zip(rel["concept_id_1"].to_pylist(), rel["concept_id_2"].to_pylist(),
                    rel["relationship_id"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_two_calls_build_equal_tables():
    first, second = vocabulary_tables(), vocabulary_tables()
    for name in first:
        assert first[name].equals(second[name]), name


def test_validity_columns_are_fixed(tables):
    for name in ("concept", "concept_relationship"):
        t = tables[name]
        assert set(t["valid_start_date"].to_pylist()) == {dt.date(1970, 1, 1)}
        assert set(t["valid_end_date"].to_pylist()) == {dt.date(2099, 12, 31)}
        assert t["invalid_reason"].null_count == t.num_rows


# --- identity ------------------------------------------------------------------------

def test_concept_ids_and_codes_are_unique(concepts):
    ids = [c["concept_id"] for c in concepts]
    keys = [(c["vocabulary_id"], c["concept_code"]) for c in concepts]
    assert len(set(ids)) == len(ids)
    assert len(set(keys)) == len(keys)


def test_fixed_omop_ids(by_id):
    for (voc, code), cid in OMOP_FIXED.items():
        assert concept_id(voc, code) == cid
        assert by_id[cid]["standard_concept"] == "S"
    assert concept_name(8507) == "MALE" and by_id[8532]["concept_name_ko"] == "여성"
    assert by_id[8876]["domain_id"] == "Unit"
    types = {c["concept_id"] for c in by_id.values() if c["vocabulary_id"] == "Type Concept"}
    assert types == {32817, 32838, 32856, 32879}


def test_local_ids_sit_in_one_block_per_vocabulary(concepts):
    blocks = {"KCD8": 1, "KCD7": 2, "ATC": 3, "LOINC": 4, "SNOMED": 5}
    for c in concepts:
        if c["vocabulary_id"] in blocks:
            offset = c["concept_id"] - 2_000_000_000 - blocks[c["vocabulary_id"]] * 100_000
            assert 1 <= offset < 100_000, c
        else:
            assert c["concept_id"] < 2_000_000_000, c


def test_ids_already_released_do_not_move():
    # Concepts are only ever appended; these ids must never change.
    assert concept_id("KCD8", "II") == 2000100001
    assert concept_id("KCD8", "E11.9") == 2000100026
    assert concept_id("KCD7", "E11.9") == 2000200001
    assert concept_id("ATC", "A") == 2000300001
    assert concept_id("LOINC", "LG-GLYC") == 2000400001
    assert concept_id("SNOMED", "71388002") == 2000500001


def test_unknown_code_raises_key_error_naming_vocabulary_and_code():
    with pytest.raises(KeyError, match=r"'Z99\.99'.*'KCD8'"):
        concept_id("KCD8", "Z99.99")
    with pytest.raises(KeyError, match="'ICD10CM'"):
        concept_id("ICD10CM", "E11.9")
    with pytest.raises(KeyError, match="123"):
        concept_name(123)


# --- content -------------------------------------------------------------------------

def test_every_concept_has_a_korean_name(concepts):
    for c in concepts:
        assert c["concept_name"].strip(), c
        assert HANGUL.search(c["concept_name_ko"] or ""), c


def test_kcd8_required_leaves_and_their_ancestors(by_id, ancestry):
    for code in KCD8_LEAVES:
        cid = concept_id("KCD8", code)
        c = by_id[cid]
        assert (c["domain_id"], c["standard_concept"]) == ("Condition", "S")
        expected_class = "KCD8 4-char" if "." in code else "KCD8 3-char"
        assert c["concept_class_id"] == expected_class
        above = {by_id[a]["concept_class_id"]: lvl for (a, d), (lvl, _) in ancestry.items()
                 if d == cid and a != cid}
        depth = 3 if "." in code else 2
        assert above["KCD8 chapter"] == depth
        assert above["KCD8 block"] == depth - 1
        assert descendants("KCD8", code) == [cid], f"{code} should be a leaf"


def test_kcd8_classes_and_standard_flags(concepts):
    expect = {"KCD8 chapter": "C", "KCD8 block": "C", "KCD8 3-char": "S", "KCD8 4-char": "S"}
    kcd8 = [c for c in concepts if c["vocabulary_id"] == "KCD8"]
    for c in kcd8:
        assert expect[c["concept_class_id"]] == c["standard_concept"], c
    chapters = {c["concept_code"]: c["concept_name"] for c in kcd8
                if c["concept_class_id"] == "KCD8 chapter"}
    assert chapters["IV"] == "Endocrine, nutritional and metabolic diseases"
    assert chapters["IX"] == "Diseases of the circulatory system"


@pytest.mark.parametrize(("block", "codes"), [
    ("I20-I25", {"I21", "I21.0", "I21.9", "I25", "I25.1"}),
    ("I60-I69", {"I63", "I63.5", "I63.9"}),
    ("E10-E14", {"E10", "E10.9", "E11", "E11.2", "E11.3", "E11.9"}),
    ("C15-C26", {"C16", "C16.9", "C18", "C18.9", "C22", "C22.0"}),
])
def test_kcd8_blocks_follow_icd10_boundaries(block, codes, by_id):
    below = {by_id[i]["concept_code"] for i in descendants("KCD8", block)}
    assert below == codes | {block}


def test_kcd8_e11_descendants_are_exactly_its_subcodes(by_id):
    got = {by_id[i]["concept_code"] for i in descendants("KCD8", "E11")}
    assert got == {"E11", "E11.2", "E11.3", "E11.9"}


def test_chapter_iv_contains_e11_9_three_levels_down(ancestry):
    key = (concept_id("KCD8", "IV"), concept_id("KCD8", "E11.9"))
    assert ancestry[key] == (3, 3)
    assert (concept_id("KCD8", "IX"), concept_id("KCD8", "E11.9")) not in ancestry


def test_every_kcd7_code_maps_to_the_same_kcd8_code(concepts, by_id, relationships):
    kcd7 = [c for c in concepts if c["vocabulary_id"] == "KCD7"]
    assert {c["concept_code"] for c in kcd7} == {"E11.9", "I10", "E78.5", "N18.9", "J06.9"}
    for c in kcd7:
        assert c["standard_concept"] is None and c["concept_class_id"] == "KCD7 code"
        targets = [b for a, b, r in relationships if a == c["concept_id"] and r == "Maps to"]
        assert len(targets) == 1
        target = by_id[targets[0]]
        assert (target["vocabulary_id"], target["concept_code"]) == ("KCD8", c["concept_code"])
        assert target["standard_concept"] == "S"
        assert (target["concept_id"], c["concept_id"], "Mapped from") in relationships
    assert descendants("KCD7", "E11.9") == []


def test_atc_levels_and_ingredients(by_id, ancestry):
    for code, name in ATC_INGREDIENTS.items():
        cid = concept_id("ATC", code)
        c = by_id[cid]
        assert (c["concept_name"], c["concept_class_id"], c["standard_concept"]) == (
            name, "ATC 5th", "S")
        assert c["domain_id"] == "Drug"
        for level, prefix_len in enumerate((5, 4, 3, 1), start=1):
            parent = by_id[concept_id("ATC", code[:prefix_len])]
            assert parent["standard_concept"] == "C"
            assert parent["concept_class_id"] == f"ATC {('4th', '3rd', '2nd', '1st')[level - 1]}"
            assert ancestry[(parent["concept_id"], cid)] == (level, level)
    assert concept_name(concept_id("ATC", "A10")) == "DRUGS USED IN DIABETES"
    assert concept_name(concept_id("ATC", "A10B")) == (
        "BLOOD GLUCOSE LOWERING DRUGS, EXCL. INSULINS")


def test_atc_statin_class_holds_the_three_statins(by_id):
    got = {by_id[i]["concept_code"] for i in descendants("ATC", "C10AA")}
    assert got == {"C10AA", "C10AA01", "C10AA05", "C10AA07"}
    insulins = {by_id[i]["concept_code"] for i in descendants("ATC", "A10A")}
    assert insulins == {"A10A", "A10AB", "A10AB01", "A10AE", "A10AE04"}


def test_loinc_measurements_and_groups(by_id):
    for code in LOINC_CODES:
        c = by_id[concept_id("LOINC", code)]
        assert (c["domain_id"], c["standard_concept"]) == ("Measurement", "S")
        assert c["concept_class_id"] in {"Lab Test", "Clinical Observation"}
    assert by_id[concept_id("LOINC", "8480-6")]["concept_class_id"] == "Clinical Observation"
    lipid = {by_id[i]["concept_code"] for i in descendants("LOINC", "LG-LIPID")}
    assert lipid == {"LG-LIPID", "2093-3", "13457-7", "2085-9", "2571-8"}
    glyc = {by_id[i]["concept_code"] for i in descendants("LOINC", "LG-GLYC")}
    assert glyc == {"LG-GLYC", "4548-4", "1558-6"}
    assert by_id[concept_id("LOINC", "LG-LIPID")]["standard_concept"] == "C"


def test_snomed_procedure_hierarchy(by_id, ancestry):
    top = concept_id("SNOMED", "71388002")
    assert set(descendants("SNOMED", "71388002")) == {
        concept_id("SNOMED", c) for c in [*SNOMED_PROCEDURES, "71388002", "423827005"]}
    for code in SNOMED_PROCEDURES:
        c = by_id[concept_id("SNOMED", code)]
        assert (c["domain_id"], c["standard_concept"]) == ("Procedure", "S")
    colonoscopy = concept_id("SNOMED", "73761001")
    assert ancestry[(top, colonoscopy)] == (2, 2)
    assert ancestry[(top, concept_id("SNOMED", "302497006"))] == (1, 1)
    assert {by_id[i]["concept_code"] for i in descendants("SNOMED", "423827005")} == {
        "423827005", "73761001", "76009000"}


# --- hierarchy and relationships, checked against an independent closure -----------

def test_ancestor_table_is_the_closure_of_is_a(concepts, ancestry, relationships):
    parents = defaultdict(set)
    for a, b, r in relationships:
        if r == "Is a":
            parents[a].add(b)
    expected: dict[tuple[int, int], tuple[int, int]] = {}
    for c in concepts:
        if c["standard_concept"] not in ("S", "C"):
            continue
        start = c["concept_id"]
        frontier, level, levels = {start}, 0, defaultdict(list)
        while frontier:  # breadth-first: every path length to every ancestor
            for node in frontier:
                levels[node].append(level)
            frontier = {p for node in frontier for p in parents[node]}
            level += 1
        for anc, seen in levels.items():
            expected[(anc, start)] = (min(seen), max(seen))
    assert ancestry == expected


def test_self_rows_for_standard_and_classification_concepts_only(concepts, ancestry):
    for c in concepts:
        has_self = ancestry.get((c["concept_id"], c["concept_id"])) == (0, 0)
        assert has_self == (c["standard_concept"] in ("S", "C")), c


def test_relationships_come_in_reverse_pairs(concepts, relationships):
    reverse = {"Is a": "Subsumes", "Subsumes": "Is a", "Maps to": "Mapped from",
               "Mapped from": "Maps to"}
    for a, b, r in relationships:
        assert (b, a, reverse[r]) in relationships
    for c in concepts:
        cid = c["concept_id"]
        assert ((cid, cid, "Maps to") in relationships) == (c["standard_concept"] == "S"), c


def test_is_a_stays_within_a_vocabulary(by_id, relationships):
    for a, b, r in relationships:
        if r == "Is a":
            assert by_id[a]["vocabulary_id"] == by_id[b]["vocabulary_id"]


def test_docstring_examples_run():
    result = doctest.testmod(vocab)
    assert result.attempted >= 5
    assert result.failed == 0

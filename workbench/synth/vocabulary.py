"""A compact OMOP-style vocabulary with Korean names, for the synthetic release.

Real codes and names from KCD8 (Korean Classification of Diseases, 8th revision,
based on ICD-10), KCD7, ATC, LOINC, SNOMED CT procedures and the fixed OMOP
Gender, Visit, Type Concept and UCUM concepts; every concept also has a Korean
name (``concept_name_ko``). The three tables match ``TABLES["concept"]``,
``TABLES["concept_ancestor"]`` and ``TABLES["concept_relationship"]``.

Concept ids: the OMOP concepts keep their real OMOP ids; every other concept
gets a local id (> 2,000,000,000), one block per vocabulary, from its position
in the literal lists below.

>>> concept_id("KCD8", "E11.9")
2000100026
>>> concept_name(concept_id("ATC", "A10BA02"))
'metformin'
>>> sorted(vocabulary_tables())
['concept', 'concept_ancestor', 'concept_relationship']
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import pyarrow as pa

from workbench.errors import WorkbenchError
from workbench.schema import TABLES

VALID_START = dt.date(1970, 1, 1)
VALID_END = dt.date(2099, 12, 31)

# --- fixed OMOP concepts ------------------------------------------------------------
# concept_id, vocabulary_id (= domain_id = concept_class_id, except UCUM: domain and
# class "Unit"), concept_code, English name, Korean name. All standard ("S").
_OMOP: tuple[tuple[int, str, str, str, str], ...] = (
    (8507, "Gender", "M", "MALE", "남성"),
    (8532, "Gender", "F", "FEMALE", "여성"),
    (9201, "Visit", "IP", "Inpatient Visit", "입원 방문"),
    (9202, "Visit", "OP", "Outpatient Visit", "외래 방문"),
    (9203, "Visit", "ER", "Emergency Room Visit", "응급실 방문"),
    (32817, "Type Concept", "EHR", "EHR", "전자의무기록"),
    (32838, "Type Concept", "EHR prescription", "EHR prescription", "전자의무기록 처방"),
    (32856, "Type Concept", "Lab", "Lab", "검사실 결과"),
    (32879, "Type Concept", "Registry", "Registry", "등록 자료"),
    (8840, "UCUM", "mg/dL", "milligram per deciliter", "밀리그램/데시리터"),
    (8554, "UCUM", "%", "percent", "퍼센트"),
    (8876, "UCUM", "mm[Hg]", "millimeter mercury column", "수은주 밀리미터"),
    (9529, "UCUM", "kg", "kilogram", "킬로그램"),
    (8582, "UCUM", "cm", "centimeter", "센티미터"),
    (9531, "UCUM", "kg/m2", "kilogram per square meter", "킬로그램/제곱미터"),
    (8713, "UCUM", "g/dL", "gram per deciliter", "그램/데시리터"),
    (8645, "UCUM", "U/L", "unit per liter", "단위/리터"),
    (720870, "UCUM", "mL/min/{1.73_m2}", "milliliter per minute per 1.73 square meter",
     "밀리리터/분/1.73제곱미터"),
)

# --- local vocabularies ---------------------------------------------------------------
# IDS STAY STABLE ACROSS RELEASES ONLY IF CONCEPTS ARE APPENDED: a concept's id is its
# vocabulary's block start plus its position in the list below. Never insert, reorder
# or delete a row; add new concepts at the end of their list.
_ID_BLOCK = {"KCD8": 2000100001, "KCD7": 2000200001, "ATC": 2000300001,
             "LOINC": 2000400001, "SNOMED": 2000500001}

# KCD8, in ICD-10 chapters and blocks: code, parent code, English name, Korean name.
# The class follows from the code: roman numeral = chapter, "X00-X99" = block,
# "X00" = 3-char, "X00.0" = 4-char.
_KCD8: tuple[tuple[str, str | None, str, str], ...] = (
    ("II", None, "Neoplasms", "신생물"),
    ("C15-C26", "II", "Malignant neoplasms of digestive organs", "소화기관의 악성 신생물"),
    ("C16", "C15-C26", "Malignant neoplasm of stomach", "위의 악성 신생물"),
    ("C16.9", "C16", "Malignant neoplasm of stomach, unspecified", "상세불명의 위의 악성 신생물"),
    ("C18", "C15-C26", "Malignant neoplasm of colon", "결장의 악성 신생물"),
    ("C18.9", "C18", "Malignant neoplasm of colon, unspecified", "상세불명의 결장의 악성 신생물"),
    ("C22", "C15-C26", "Malignant neoplasm of liver and intrahepatic bile ducts",
     "간 및 간내 담관의 악성 신생물"),
    ("C22.0", "C22", "Liver cell carcinoma", "간세포암종"),
    ("C30-C39", "II", "Malignant neoplasms of respiratory and intrathoracic organs",
     "호흡기 및 흉곽내 기관의 악성 신생물"),
    ("C34", "C30-C39", "Malignant neoplasm of bronchus and lung", "기관지 및 폐의 악성 신생물"),
    ("C34.9", "C34", "Malignant neoplasm of bronchus or lung, unspecified",
     "상세불명의 기관지 또는 폐의 악성 신생물"),
    ("C50-C50", "II", "Malignant neoplasm of breast", "유방의 악성 신생물"),
    ("C50", "C50-C50", "Malignant neoplasm of breast", "유방의 악성 신생물"),
    ("C50.9", "C50", "Malignant neoplasm of breast, unspecified", "상세불명의 유방의 악성 신생물"),
    ("C60-C63", "II", "Malignant neoplasms of male genital organs", "남성 생식기관의 악성 신생물"),
    ("C61", "C60-C63", "Malignant neoplasm of prostate", "전립선의 악성 신생물"),
    ("C73-C75", "II", "Malignant neoplasms of thyroid and other endocrine glands",
     "갑상선 및 기타 내분비선의 악성 신생물"),
    ("C73", "C73-C75", "Malignant neoplasm of thyroid gland", "갑상선의 악성 신생물"),
    ("IV", None, "Endocrine, nutritional and metabolic diseases", "내분비, 영양 및 대사 질환"),
    ("E10-E14", "IV", "Diabetes mellitus", "당뇨병"),
    ("E10", "E10-E14", "Type 1 diabetes mellitus", "1형 당뇨병"),
    ("E10.9", "E10", "Type 1 diabetes mellitus without complications",
     "합병증을 동반하지 않은 1형 당뇨병"),
    ("E11", "E10-E14", "Type 2 diabetes mellitus", "2형 당뇨병"),
    ("E11.2", "E11", "Type 2 diabetes mellitus with renal complications",
     "신장 합병증을 동반한 2형 당뇨병"),
    ("E11.3", "E11", "Type 2 diabetes mellitus with ophthalmic complications",
     "눈 합병증을 동반한 2형 당뇨병"),
    ("E11.9", "E11", "Type 2 diabetes mellitus without complications",
     "합병증을 동반하지 않은 2형 당뇨병"),
    ("E65-E68", "IV", "Obesity and other hyperalimentation", "비만 및 기타 과영양"),
    ("E66", "E65-E68", "Obesity", "비만"),
    ("E66.9", "E66", "Obesity, unspecified", "상세불명의 비만"),
    ("E70-E90", "IV", "Metabolic disorders", "대사장애"),
    ("E78", "E70-E90", "Disorders of lipoprotein metabolism and other lipidaemias",
     "지질단백질 대사장애 및 기타 지질증"),
    ("E78.0", "E78", "Pure hypercholesterolaemia", "순수 고콜레스테롤혈증"),
    ("E78.2", "E78", "Mixed hyperlipidaemia", "혼합성 고지질혈증"),
    ("E78.5", "E78", "Hyperlipidaemia, unspecified", "상세불명의 고지질혈증"),
    ("V", None, "Mental and behavioural disorders", "정신 및 행동 장애"),
    ("F00-F09", "V", "Organic, including symptomatic, mental disorders",
     "증상성을 포함하는 기질성 정신장애"),
    ("F03", "F00-F09", "Unspecified dementia", "상세불명의 치매"),
    ("F30-F39", "V", "Mood [affective] disorders", "기분[정동] 장애"),
    ("F32", "F30-F39", "Depressive episode", "우울에피소드"),
    ("F32.9", "F32", "Depressive episode, unspecified", "상세불명의 우울에피소드"),
    ("VI", None, "Diseases of the nervous system", "신경계통의 질환"),
    ("G30-G32", "VI", "Other degenerative diseases of the nervous system",
     "신경계통의 기타 퇴행성 질환"),
    ("G30", "G30-G32", "Alzheimer disease", "알츠하이머병"),
    ("G30.9", "G30", "Alzheimer disease, unspecified", "상세불명의 알츠하이머병"),
    ("G40-G47", "VI", "Episodic and paroxysmal disorders", "삽화성 및 발작성 장애"),
    ("G47", "G40-G47", "Sleep disorders", "수면장애"),
    ("G47.3", "G47", "Sleep apnoea", "수면무호흡"),
    ("IX", None, "Diseases of the circulatory system", "순환계통의 질환"),
    ("I10-I15", "IX", "Hypertensive diseases", "고혈압성 질환"),
    ("I10", "I10-I15", "Essential (primary) hypertension", "본태성(원발성) 고혈압"),
    ("I20-I25", "IX", "Ischaemic heart diseases", "허혈성 심장질환"),
    ("I21", "I20-I25", "Acute myocardial infarction", "급성 심근경색증"),
    ("I21.0", "I21", "Acute transmural myocardial infarction of anterior wall",
     "전벽의 급성 전층 심근경색증"),
    ("I21.9", "I21", "Acute myocardial infarction, unspecified", "상세불명의 급성 심근경색증"),
    ("I25", "I20-I25", "Chronic ischaemic heart disease", "만성 허혈심장병"),
    ("I25.1", "I25", "Atherosclerotic heart disease", "죽상경화성 심장병"),
    ("I30-I52", "IX", "Other forms of heart disease", "기타 형태의 심장병"),
    ("I48", "I30-I52", "Atrial fibrillation and flutter", "심방세동 및 조동"),
    ("I48.9", "I48", "Atrial fibrillation and atrial flutter, unspecified",
     "상세불명의 심방세동 및 심방조동"),
    ("I50", "I30-I52", "Heart failure", "심부전"),
    ("I50.9", "I50", "Heart failure, unspecified", "상세불명의 심부전"),
    ("I60-I69", "IX", "Cerebrovascular diseases", "뇌혈관질환"),
    ("I63", "I60-I69", "Cerebral infarction", "뇌경색증"),
    ("I63.5", "I63", "Cerebral infarction due to unspecified occlusion or stenosis of "
     "cerebral arteries", "대뇌동맥의 상세불명 폐쇄 또는 협착에 의한 뇌경색증"),
    ("I63.9", "I63", "Cerebral infarction, unspecified", "상세불명의 뇌경색증"),
    ("X", None, "Diseases of the respiratory system", "호흡계통의 질환"),
    ("J00-J06", "X", "Acute upper respiratory infections", "급성 상기도감염"),
    ("J06", "J00-J06", "Acute upper respiratory infections of multiple and unspecified sites",
     "다발성 및 상세불명 부위의 급성 상기도감염"),
    ("J06.9", "J06", "Acute upper respiratory infection, unspecified",
     "상세불명의 급성 상기도감염"),
    ("J09-J18", "X", "Influenza and pneumonia", "인플루엔자 및 폐렴"),
    ("J18", "J09-J18", "Pneumonia, organism unspecified", "상세불명 병원체의 폐렴"),
    ("J18.9", "J18", "Pneumonia, unspecified", "상세불명의 폐렴"),
    ("J40-J47", "X", "Chronic lower respiratory diseases", "만성 하기도질환"),
    ("J44", "J40-J47", "Other chronic obstructive pulmonary disease", "기타 만성 폐쇄성 폐질환"),
    ("J44.9", "J44", "Chronic obstructive pulmonary disease, unspecified",
     "상세불명의 만성 폐쇄성 폐질환"),
    ("J45", "J40-J47", "Asthma", "천식"),
    ("J45.9", "J45", "Asthma, unspecified", "상세불명의 천식"),
    ("XI", None, "Diseases of the digestive system", "소화계통의 질환"),
    ("K20-K31", "XI", "Diseases of oesophagus, stomach and duodenum",
     "식도, 위 및 십이지장의 질환"),
    ("K21", "K20-K31", "Gastro-oesophageal reflux disease", "위-식도역류병"),
    ("K21.9", "K21", "Gastro-oesophageal reflux disease without oesophagitis",
     "식도염을 동반하지 않은 위-식도역류병"),
    ("K29", "K20-K31", "Gastritis and duodenitis", "위염 및 십이지장염"),
    ("K29.7", "K29", "Gastritis, unspecified", "상세불명의 위염"),
    ("XIII", None, "Diseases of the musculoskeletal system and connective tissue",
     "근골격계통 및 결합조직의 질환"),
    ("M15-M19", "XIII", "Arthrosis", "관절증"),
    ("M17", "M15-M19", "Gonarthrosis [arthrosis of knee]", "무릎관절증"),
    ("M17.9", "M17", "Gonarthrosis, unspecified", "상세불명의 무릎관절증"),
    ("M50-M54", "XIII", "Other dorsopathies", "기타 등병증"),
    ("M54", "M50-M54", "Dorsalgia", "등통증"),
    ("M54.5", "M54", "Low back pain", "요통"),
    ("XIV", None, "Diseases of the genitourinary system", "비뇨생식계통의 질환"),
    ("N17-N19", "XIV", "Renal failure", "신부전"),
    ("N18", "N17-N19", "Chronic kidney disease", "만성 신장병"),
    ("N18.3", "N18", "Chronic kidney disease, stage 3", "만성 신장병(3기)"),
    ("N18.4", "N18", "Chronic kidney disease, stage 4", "만성 신장병(4기)"),
    ("N18.5", "N18", "Chronic kidney disease, stage 5", "만성 신장병(5기)"),
    ("N18.9", "N18", "Chronic kidney disease, unspecified", "상세불명의 만성 신장병"),
    ("XVIII", None, "Symptoms, signs and abnormal clinical and laboratory findings, "
     "not elsewhere classified", "달리 분류되지 않은 증상, 징후와 임상 및 검사의 이상소견"),
    ("R95-R99", "XVIII", "Ill-defined and unknown causes of mortality",
     "불명확하고 원인불명의 사망원인"),
    ("R99", "R95-R99", "Other ill-defined and unspecified causes of mortality",
     "기타 불명확하고 상세불명의 사망원인"),
)

# KCD7, the previous revision (non-standard; each maps to the KCD8 code spelled the same).
# KCD7 still named E11 for insulin dependence; KCD8 follows ICD-10 2016 ("type 2").
_KCD7: tuple[tuple[str, str, str], ...] = (
    ("E11.9", "Non-insulin-dependent diabetes mellitus without complications",
     "합병증을 동반하지 않은 인슐린-비의존 당뇨병"),
    ("I10", "Essential (primary) hypertension", "본태성(원발성) 고혈압"),
    ("E78.5", "Hyperlipidaemia, unspecified", "상세불명의 고지질혈증"),
    ("N18.9", "Chronic kidney disease, unspecified", "상세불명의 만성 신장병"),
    ("J06.9", "Acute upper respiratory infection, unspecified", "상세불명의 급성 상기도감염"),
)

# ATC: code, English name, Korean name. The level follows from the code's length
# (1, 3, 4, 5, 7 characters) and the parent is the code's prefix one level up.
_ATC: tuple[tuple[str, str, str], ...] = (
    ("A", "ALIMENTARY TRACT AND METABOLISM", "소화관 및 대사"),
    ("A02", "DRUGS FOR ACID RELATED DISORDERS", "위산 관련 장애 치료제"),
    ("A02B", "DRUGS FOR PEPTIC ULCER AND GASTRO-OESOPHAGEAL REFLUX DISEASE (GORD)",
     "소화성 궤양 및 위식도역류질환 치료제"),
    ("A02BC", "Proton pump inhibitors", "양성자 펌프 억제제"),
    ("A02BC01", "omeprazole", "오메프라졸"),
    ("A10", "DRUGS USED IN DIABETES", "당뇨병 치료제"),
    ("A10A", "INSULINS AND ANALOGUES", "인슐린 및 유사체"),
    ("A10AB", "Insulins and analogues for injection, fast-acting",
     "주사용 속효성 인슐린 및 유사체"),
    ("A10AB01", "insulin (human)", "인슐린(사람)"),
    ("A10AE", "Insulins and analogues for injection, long-acting",
     "주사용 지속성 인슐린 및 유사체"),
    ("A10AE04", "insulin glargine", "인슐린 글라진"),
    ("A10B", "BLOOD GLUCOSE LOWERING DRUGS, EXCL. INSULINS", "인슐린 제외 혈당강하제"),
    ("A10BA", "Biguanides", "비구아니드계"),
    ("A10BA02", "metformin", "메트포르민"),
    ("A10BH", "Dipeptidyl peptidase 4 (DPP-4) inhibitors", "DPP-4 억제제"),
    ("A10BH01", "sitagliptin", "시타글립틴"),
    ("A10BK", "Sodium-glucose co-transporter 2 (SGLT2) inhibitors", "SGLT2 억제제"),
    ("A10BK01", "dapagliflozin", "다파글리플로진"),
    ("B", "BLOOD AND BLOOD FORMING ORGANS", "혈액 및 조혈기관"),
    ("B01", "ANTITHROMBOTIC AGENTS", "항혈전제"),
    ("B01A", "ANTITHROMBOTIC AGENTS", "항혈전제"),
    ("B01AC", "Platelet aggregation inhibitors excl. heparin", "헤파린 제외 혈소판 응집 억제제"),
    ("B01AC04", "clopidogrel", "클로피도그렐"),
    ("B01AC06", "acetylsalicylic acid", "아세틸살리실산"),
    ("B01AF", "Direct factor Xa inhibitors", "직접 Xa 인자 억제제"),
    ("B01AF01", "rivaroxaban", "리바록사반"),
    ("C", "CARDIOVASCULAR SYSTEM", "심혈관계"),
    ("C03", "DIURETICS", "이뇨제"),
    ("C03A", "LOW-CEILING DIURETICS, THIAZIDES", "저천장 이뇨제, 티아지드계"),
    ("C03AA", "Thiazides, plain", "티아지드계 단일제"),
    ("C03AA03", "hydrochlorothiazide", "히드로클로로티아지드"),
    ("C07", "BETA BLOCKING AGENTS", "베타 차단제"),
    ("C07A", "BETA BLOCKING AGENTS", "베타 차단제"),
    ("C07AB", "Beta blocking agents, selective", "선택적 베타 차단제"),
    ("C07AB02", "metoprolol", "메토프롤롤"),
    ("C08", "CALCIUM CHANNEL BLOCKERS", "칼슘 채널 차단제"),
    ("C08C", "SELECTIVE CALCIUM CHANNEL BLOCKERS WITH MAINLY VASCULAR EFFECTS",
     "주로 혈관에 작용하는 선택적 칼슘 채널 차단제"),
    ("C08CA", "Dihydropyridine derivatives", "디히드로피리딘 유도체"),
    ("C08CA01", "amlodipine", "암로디핀"),
    ("C09", "AGENTS ACTING ON THE RENIN-ANGIOTENSIN SYSTEM", "레닌-안지오텐신계 작용약"),
    ("C09C", "ANGIOTENSIN II RECEPTOR BLOCKERS (ARBs), PLAIN",
     "안지오텐신 II 수용체 차단제 단일제"),
    ("C09CA", "Angiotensin II receptor blockers (ARBs), plain", "안지오텐신 II 수용체 차단제"),
    ("C09CA01", "losartan", "로사르탄"),
    ("C10", "LIPID MODIFYING AGENTS", "지질 조절제"),
    ("C10A", "LIPID MODIFYING AGENTS, PLAIN", "지질 조절제 단일제"),
    ("C10AA", "HMG CoA reductase inhibitors", "HMG-CoA 환원효소 억제제"),
    ("C10AA01", "simvastatin", "심바스타틴"),
    ("C10AA05", "atorvastatin", "아토르바스타틴"),
    ("C10AA07", "rosuvastatin", "로수바스타틴"),
    ("H", "SYSTEMIC HORMONAL PREPARATIONS, EXCL. SEX HORMONES AND INSULINS",
     "성호르몬 및 인슐린 제외 전신 호르몬제"),
    ("H03", "THYROID THERAPY", "갑상선 치료제"),
    ("H03A", "THYROID PREPARATIONS", "갑상선 제제"),
    ("H03AA", "Thyroid hormones", "갑상선 호르몬"),
    ("H03AA01", "levothyroxine sodium", "레보티록신나트륨"),
    ("J", "ANTIINFECTIVES FOR SYSTEMIC USE", "전신용 항감염제"),
    ("J01", "ANTIBACTERIALS FOR SYSTEMIC USE", "전신용 항균제"),
    ("J01C", "BETA-LACTAM ANTIBACTERIALS, PENICILLINS", "베타락탐계 항균제, 페니실린계"),
    ("J01CA", "Penicillins with extended spectrum", "광범위 페니실린"),
    ("J01CA04", "amoxicillin", "아목시실린"),
    ("M", "MUSCULO-SKELETAL SYSTEM", "근골격계"),
    ("M01", "ANTIINFLAMMATORY AND ANTIRHEUMATIC PRODUCTS", "소염제 및 항류마티스제"),
    ("M01A", "ANTIINFLAMMATORY AND ANTIRHEUMATIC PRODUCTS, NON-STEROIDS",
     "비스테로이드성 소염제 및 항류마티스제"),
    ("M01AE", "Propionic acid derivatives", "프로피온산 유도체"),
    ("M01AE01", "ibuprofen", "이부프로펜"),
    ("N", "NERVOUS SYSTEM", "신경계"),
    ("N02", "ANALGESICS", "진통제"),
    ("N02B", "OTHER ANALGESICS AND ANTIPYRETICS", "기타 진통제 및 해열제"),
    ("N02BE", "Anilides", "아닐리드계"),
    ("N02BE01", "paracetamol", "파라세타몰(아세트아미노펜)"),
    ("N06", "PSYCHOANALEPTICS", "정신흥분제"),
    ("N06A", "ANTIDEPRESSANTS", "항우울제"),
    ("N06AB", "Selective serotonin reuptake inhibitors", "선택적 세로토닌 재흡수 억제제"),
    ("N06AB10", "escitalopram", "에스시탈로프람"),
    ("N06D", "ANTI-DEMENTIA DRUGS", "항치매제"),
    ("N06DA", "Anticholinesterases", "콜린에스테라제 억제제"),
    ("N06DA02", "donepezil", "도네페질"),
    ("R", "RESPIRATORY SYSTEM", "호흡기계"),
    ("R03", "DRUGS FOR OBSTRUCTIVE AIRWAY DISEASES", "폐쇄성 기도질환 치료제"),
    ("R03A", "ADRENERGICS, INHALANTS", "흡입용 아드레날린성 약물"),
    ("R03AK", "Adrenergics in combination with corticosteroids or other drugs, "
     "excl. anticholinergics", "항콜린제 제외 아드레날린성 약물과 코르티코스테로이드 등의 복합제"),
    ("R03AK06", "salmeterol and fluticasone", "살메테롤 및 플루티카손"),
)

# LOINC: code, parent code (a LOINC Group), concept class, English name, Korean name.
# The "LG-*" groups are local, clearly made-up codes (real LOINC groups use LG...-...).
_LOINC: tuple[tuple[str, str | None, str, str, str], ...] = (
    ("LG-GLYC", None, "LOINC Group", "Glycemic tests", "혈당 관련 검사"),
    ("LG-LIPID", None, "LOINC Group", "Lipid panel", "지질 검사"),
    ("4548-4", "LG-GLYC", "Lab Test", "Hemoglobin A1c/Hemoglobin.total in Blood", "당화혈색소"),
    ("1558-6", "LG-GLYC", "Lab Test", "Fasting glucose [Mass/volume] in Serum or Plasma",
     "공복 혈당"),
    ("2093-3", "LG-LIPID", "Lab Test", "Cholesterol [Mass/volume] in Serum or Plasma",
     "총콜레스테롤"),
    ("13457-7", "LG-LIPID", "Lab Test",
     "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation",
     "저밀도지단백(LDL) 콜레스테롤(계산값)"),
    ("2085-9", "LG-LIPID", "Lab Test", "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
     "고밀도지단백(HDL) 콜레스테롤"),
    ("2571-8", "LG-LIPID", "Lab Test", "Triglyceride [Mass/volume] in Serum or Plasma", "중성지방"),
    ("2160-0", None, "Lab Test", "Creatinine [Mass/volume] in Serum or Plasma", "혈청 크레아티닌"),
    ("62238-1", None, "Lab Test",
     "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum, Plasma "
     "or Blood by Creatinine-based formula (CKD-EPI)", "추정 사구체여과율(CKD-EPI)"),
    ("8480-6", None, "Clinical Observation", "Systolic blood pressure", "수축기 혈압"),
    ("8462-4", None, "Clinical Observation", "Diastolic blood pressure", "이완기 혈압"),
    ("39156-5", None, "Clinical Observation", "Body mass index (BMI) [Ratio]", "체질량지수"),
    ("29463-7", None, "Clinical Observation", "Body weight", "체중"),
    ("8302-2", None, "Clinical Observation", "Body height", "신장(키)"),
    ("718-7", None, "Lab Test", "Hemoglobin [Mass/volume] in Blood", "혈색소"),
    ("1742-6", None, "Lab Test",
     "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
     "알라닌아미노전달효소(ALT)"),
    ("1920-8", None, "Lab Test",
     "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
     "아스파르트산아미노전달효소(AST)"),
)

# SNOMED CT procedures: code, parent code, standard concept, English name, Korean name.
_SNOMED: tuple[tuple[str, str | None, str, str, str], ...] = (
    ("71388002", None, "C", "Procedure", "시술"),
    ("423827005", "71388002", "C", "Endoscopy", "내시경검사"),
    ("73761001", "423827005", "S", "Colonoscopy", "대장내시경검사"),
    ("76009000", "423827005", "S", "Esophagogastroduodenoscopy", "식도위십이지장내시경검사"),
    ("302497006", "71388002", "S", "Hemodialysis", "혈액투석"),
    ("415070008", "71388002", "S", "Percutaneous coronary intervention", "경피적 관상동맥중재술"),
    ("33367005", "71388002", "S", "Angiography of coronary artery", "관상동맥조영술"),
    ("169069000", "71388002", "S", "Computed tomography of chest", "흉부 컴퓨터단층촬영"),
    ("609588000", "71388002", "S", "Total knee replacement", "슬관절 전치환술"),
    ("29303009", "71388002", "S", "Electrocardiographic procedure", "심전도검사"),
)


class UnknownConceptError(WorkbenchError, KeyError):
    """A (vocabulary, code) or concept id that this vocabulary does not hold."""

    def __str__(self) -> str:  # KeyError would print the repr of the message
        return WorkbenchError.__str__(self)


@dataclass(frozen=True)
class _Concept:
    concept_id: int
    name: str
    name_ko: str
    domain: str
    vocabulary: str
    concept_class: str
    standard: str | None
    code: str
    parent_code: str | None = None  # same vocabulary; None at the top of a hierarchy


def _kcd8_class(code: str) -> str:
    if not any(ch.isdigit() for ch in code):
        return "KCD8 chapter"
    if "-" in code:
        return "KCD8 block"
    return "KCD8 4-char" if "." in code else "KCD8 3-char"


_ATC_LEVEL = {1: "1st", 3: "2nd", 4: "3rd", 5: "4th", 7: "5th"}
_ATC_PARENT_LEN = {3: 1, 4: 3, 5: 4, 7: 5}


def _all_concepts() -> list[_Concept]:
    out = [_Concept(cid, en, ko, "Unit" if voc == "UCUM" else voc, voc,
                    "Unit" if voc == "UCUM" else voc, "S", code)
           for cid, voc, code, en, ko in _OMOP]

    def local(voc: str, i: int) -> int:
        return _ID_BLOCK[voc] + i

    for i, (code, parent, en, ko) in enumerate(_KCD8):
        cls = _kcd8_class(code)
        std = "C" if cls in ("KCD8 chapter", "KCD8 block") else "S"
        out.append(_Concept(local("KCD8", i), en, ko, "Condition", "KCD8", cls, std, code,
                            parent))
    for i, (code, en, ko) in enumerate(_KCD7):
        out.append(_Concept(local("KCD7", i), en, ko, "Condition", "KCD7", "KCD7 code", None,
                            code))
    for i, (code, en, ko) in enumerate(_ATC):
        parent = code[:_ATC_PARENT_LEN[len(code)]] if len(code) > 1 else None
        std = "S" if len(code) == 7 else "C"
        out.append(_Concept(local("ATC", i), en, ko, "Drug", "ATC",
                            f"ATC {_ATC_LEVEL[len(code)]}", std, code, parent))
    for i, (code, parent, cls, en, ko) in enumerate(_LOINC):
        std = "C" if cls == "LOINC Group" else "S"
        out.append(_Concept(local("LOINC", i), en, ko, "Measurement", "LOINC", cls, std, code,
                            parent))
    for i, (code, parent, std, en, ko) in enumerate(_SNOMED):
        out.append(_Concept(local("SNOMED", i), en, ko, "Procedure", "SNOMED", "Procedure", std,
                            code, parent))
    return out


@dataclass(frozen=True)
class _Vocabulary:
    concepts: tuple[_Concept, ...]
    by_key: dict[tuple[str, str], _Concept]
    by_id: dict[int, _Concept]
    # (ancestor, descendant) -> levels of separation; a tree, so min = max.
    ancestry: dict[tuple[int, int], int]


@lru_cache(maxsize=1)
def _vocabulary() -> _Vocabulary:
    concepts = tuple(_all_concepts())
    by_key = {(c.vocabulary, c.code): c for c in concepts}
    by_id = {c.concept_id: c for c in concepts}
    if len(by_key) != len(concepts) or len(by_id) != len(concepts):
        raise AssertionError("duplicate (vocabulary_id, concept_code) or concept_id")
    ancestry: dict[tuple[int, int], int] = {}
    for c in concepts:
        if c.standard is None:
            continue
        node, level = c, 0
        while True:
            ancestry[(node.concept_id, c.concept_id)] = level
            if node.parent_code is None:
                break
            node, level = by_key[(c.vocabulary, node.parent_code)], level + 1
    return _Vocabulary(concepts, by_key, by_id, ancestry)


def concept_id(vocabulary_id: str, code: str) -> int:
    """The concept_id of ``code`` in ``vocabulary_id``.

    Raises ``UnknownConceptError`` (a ``KeyError``) naming both if there is none.

    >>> concept_id("Gender", "F")
    8532
    >>> concept_id("ATC", "C10AA05")
    2000300048
    """
    concept = _vocabulary().by_key.get((vocabulary_id, code))
    if concept is None:
        known = sorted({v for v, _ in _vocabulary().by_key})
        raise UnknownConceptError(
            f"no concept with code {code!r} in vocabulary {vocabulary_id!r}",
            hint=f"vocabularies are {', '.join(known)}; codes are case-sensitive"
                 " and KCD codes keep their dot (E11.9)")
    return concept.concept_id


def concept_name(concept_id: int) -> str:
    """The English name of a concept.

    >>> concept_name(9201)
    'Inpatient Visit'
    >>> concept_name(2000100026)
    'Type 2 diabetes mellitus without complications'
    """
    concept = _vocabulary().by_id.get(concept_id)
    if concept is None:
        raise UnknownConceptError(f"no concept with concept_id {concept_id}",
                                  hint="look ids up with concept_id(vocabulary_id, code)")
    return concept.name


def descendants(vocabulary_id: str, code: str) -> list[int]:
    """The concept ids at or below ``code`` in its hierarchy, itself included, ascending.

    Empty for a non-standard concept (KCD7), which has no place in a hierarchy.

    >>> [concept_name(i) for i in descendants("ATC", "C10AA")]
    ['HMG CoA reductase inhibitors', 'simvastatin', 'atorvastatin', 'rosuvastatin']
    """
    top = concept_id(vocabulary_id, code)
    return sorted(d for a, d in _vocabulary().ancestry if a == top)


def vocabulary_tables() -> dict[str, pa.Table]:
    """The vocabulary as Arrow tables: ``concept``, ``concept_ancestor``, ``concept_relationship``.

    Each is cast to its schema in ``workbench.schema.TABLES`` and sorted by its id
    columns; every call builds the same tables.

    ``concept``
        One row per concept; ``concept_name_ko`` is the Korean name. Dates span
        1970-01-01 to 2099-12-31, ``invalid_reason`` is null.
    ``concept_ancestor``
        The transitive closure of each hierarchy, with the self row (levels 0) for
        every standard ("S") and classification ("C") concept.
    ``concept_relationship``
        "Is a" (child to parent) and "Subsumes" (parent to child); "Maps to" and
        "Mapped from" for each standard concept to itself and for KCD7 to KCD8.

    >>> tables = vocabulary_tables()
    >>> tables["concept"].schema == TABLES["concept"]
    True
    >>> tables["concept_ancestor"].num_rows > tables["concept"].num_rows
    True
    """
    vocab = _vocabulary()
    concepts = sorted(vocab.concepts, key=lambda c: c.concept_id)
    n = len(concepts)
    concept = pa.table({
        "concept_id": [c.concept_id for c in concepts],
        "concept_name": [c.name for c in concepts],
        "concept_name_ko": [c.name_ko for c in concepts],
        "domain_id": [c.domain for c in concepts],
        "vocabulary_id": [c.vocabulary for c in concepts],
        "concept_class_id": [c.concept_class for c in concepts],
        "standard_concept": [c.standard for c in concepts],
        "concept_code": [c.code for c in concepts],
        "valid_start_date": [VALID_START] * n,
        "valid_end_date": [VALID_END] * n,
        "invalid_reason": pa.nulls(n, pa.string()),
    })

    pairs = sorted(vocab.ancestry.items())
    ancestor = pa.table({
        "ancestor_concept_id": [a for (a, _), _ in pairs],
        "descendant_concept_id": [d for (_, d), _ in pairs],
        "min_levels_of_separation": [lvl for _, lvl in pairs],
        "max_levels_of_separation": [lvl for _, lvl in pairs],
    })

    links: set[tuple[int, int, str]] = set()
    for c in concepts:
        if c.parent_code is not None:
            parent = vocab.by_key[(c.vocabulary, c.parent_code)].concept_id
            links |= {(c.concept_id, parent, "Is a"), (parent, c.concept_id, "Subsumes")}
        if c.standard == "S":
            links |= {(c.concept_id, c.concept_id, "Maps to"),
                      (c.concept_id, c.concept_id, "Mapped from")}
        if c.vocabulary == "KCD7":
            target = vocab.by_key[("KCD8", c.code)].concept_id
            links |= {(c.concept_id, target, "Maps to"), (target, c.concept_id, "Mapped from")}
    rows = sorted(links)
    m = len(rows)
    relationship = pa.table({
        "concept_id_1": [r[0] for r in rows],
        "concept_id_2": [r[1] for r in rows],
        "relationship_id": [r[2] for r in rows],
        "valid_start_date": [VALID_START] * m,
        "valid_end_date": [VALID_END] * m,
        "invalid_reason": pa.nulls(m, pa.string()),
    })
    return {
        "concept": concept.cast(TABLES["concept"]),
        "concept_ancestor": ancestor.cast(TABLES["concept_ancestor"]),
        "concept_relationship": relationship.cast(TABLES["concept_relationship"]),
    }

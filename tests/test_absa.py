"""The ABSA mapping on XML fixtures written here (the public files are read only by path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA
from wordofclick.absa import import_absa, read_absa
from wordofclick.errors import DataError

SEMEVAL14 = """<?xml version="1.0" encoding="UTF-8"?>
<sentences>
  <sentence id="1"><text>The waiter was rude but the pizza was great.</text>
    <aspectCategories>
      <aspectCategory category="service" polarity="negative"/>
      <aspectCategory category="food" polarity="positive"/>
    </aspectCategories></sentence>
  <sentence id="2"><text>Service was hit and miss.</text>
    <aspectCategories><aspectCategory category="service" polarity="conflict"/></aspectCategories>
  </sentence>
  <sentence id="3"><text>We had the soup.</text>
    <aspectCategories><aspectCategory category="food" polarity="neutral"/></aspectCategories>
  </sentence>
  <sentence id="4"><text>Lovely decor.</text>
    <aspectCategories><aspectCategory category="ambience" polarity="positive"/></aspectCategories>
  </sentence>
  <sentence id="5"><text>We went on a Tuesday.</text></sentence>
</sentences>
"""

SEMEVAL16 = """<?xml version="1.0" encoding="UTF-8"?>
<Reviews>
  <Review rid="7"><sentences>
    <sentence id="7:0"><text>Support never called back.</text>
      <Opinions><Opinion category="SUPPORT#QUALITY" polarity="negative"/></Opinions></sentence>
    <sentence id="7:1"><text>The screen is gorgeous.</text>
      <Opinions><Opinion category="DISPLAY#QUALITY" polarity="positive"/></Opinions></sentence>
    <sentence id="7:2"><text>Shipping took ages.</text>
      <Opinions><Opinion category="SHIPPING#GENERAL" polarity="negative"/></Opinions></sentence>
  </sentences></Review>
  <Review rid="8"><sentences>
    <sentence id="8:0"><text>Overpriced for what it is.</text>
      <Opinions><Opinion category="RESTAURANT#PRICES" polarity="negative"/></Opinions></sentence>
    <sentence id="8:1"><text>Nice place overall.</text>
      <Opinions><Opinion category="RESTAURANT#GENERAL" polarity="positive"/></Opinions></sentence>
  </sentences></Review>
</Reviews>
"""


@pytest.fixture
def xml_files(tmp_path: Path) -> tuple[Path, Path]:
    a = tmp_path / "se14.xml"
    b = tmp_path / "se16.xml"
    a.write_text(SEMEVAL14, encoding="utf-8")
    b.write_text(SEMEVAL16, encoding="utf-8")
    return a, b


def test_sentence_mapping(xml_files):
    records = {r["id"]: r["labels"] for r in read_absa(xml_files[0])}
    assert records["1"] == ["service_complaint", "product_praise"]
    assert records["2"] == ["service_complaint", "service_praise"]  # conflict gives both
    assert records["3"] == []  # neutral gives none
    assert records["4"] == []  # unmapped aspect gives none
    assert records["5"] == []  # no aspect at all is a valid unlabeled example


def test_semeval16_entities(xml_files):
    records = {r["id"]: r["labels"] for r in read_absa(xml_files[1])}
    assert records["7:0"] == ["service_complaint"]  # SUPPORT is service
    assert records["7:1"] == ["product_praise"]  # any laptop part is product
    assert records["7:2"] == []  # shipping maps to nothing
    assert records["8:0"] == ["product_complaint"]  # restaurant prices are product
    assert records["8:1"] == []


def test_review_grouping_unions_labels(xml_files):
    reviews = {r["id"]: r for r in read_absa(xml_files[1], by_review=True)}
    assert reviews["7"]["labels"] == ["service_complaint", "product_praise"]
    assert reviews["7"]["text"].startswith("Support never called back. The screen")
    assert reviews["8"]["labels"] == ["product_complaint"]


def test_review_grouping_needs_semeval16(xml_files):
    with pytest.raises(DataError, match="--reviews needs SemEval-2016"):
        read_absa(xml_files[0], by_review=True)


def test_import_combines_and_dedupes(xml_files, tmp_path):
    out = tmp_path / "out.jsonl"
    summary = import_absa([xml_files[0], xml_files[0], xml_files[1]], out)
    assert summary.read == 5 + 5 + 5
    assert summary.duplicates == 5
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == summary.written == 10


def test_malformed_and_dtd_xml_are_refused(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text("<sentences><sentence>", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.xml: not well-formed XML"):
        read_absa(broken)
    bomb = tmp_path / "bomb.xml"
    bomb.write_text('<!DOCTYPE x [<!ENTITY a "aaaa">]><sentences/>', encoding="utf-8")
    with pytest.raises(DataError, match="DTD"):
        read_absa(bomb)


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")
def test_shared_mams_val_counts_match_the_data_readme():
    records = read_absa(SHARED_DATA / "mams_acsa_val.xml")
    counts = {}
    for record in records:
        for label in record["labels"]:
            counts[label] = counts.get(label, 0) + 1
    assert counts == {
        "service_complaint": 155, "product_complaint": 45,
        "service_praise": 59, "product_praise": 100,
    }
    assert sum(1 for r in records if not r["labels"]) == 78


AUDIT = SHARED_DATA.parent / "audit" / "mams_acsa_val_guide_labels.jsonl"


def audit_records() -> list[dict]:
    return [json.loads(line) for line in AUDIT.read_text(encoding="utf-8").splitlines()]


@pytest.mark.skipif(not AUDIT.is_file(), reason="../shared/data/audit is absent")
def test_guide_audit_holds_ids_and_labels_only():
    """Our second labeling of MAMS val: one record per sentence, ids and labels only."""
    from wordofclick.labels import DEFAULT_LABELS

    records = audit_records()
    assert len(records) == 400
    assert len({r["sentence_id"] for r in records}) == 400
    assert all(set(r) == {"sentence_id", "labels"} for r in records)
    assert all(set(r["labels"]) <= set(DEFAULT_LABELS) for r in records)
    assert all(r["labels"] == sorted(r["labels"], key=DEFAULT_LABELS.index) for r in records)


@pytest.mark.skipif(not AUDIT.is_file(), reason="../shared/data/audit is absent")
def test_guide_audit_covers_every_mams_val_sentence():
    from wordofclick.absa import iter_sentences

    sentences = iter_sentences(SHARED_DATA / "mams_acsa_val.xml")
    assert {s.sentence_id for s in sentences} == {r["sentence_id"] for r in audit_records()}

"""Import SemEval-2014, SemEval-2016 and MAMS aspect-category XML into our four labels.

The mapping follows the annotation guide (``wordofclick/datasets/ANNOTATION_GUIDE.md``) and the
shared data README: service
aspects (how people treated the customer) and product aspects (what was sold); negative polarity
gives the aspect's complaint label, positive its praise label, conflict both, neutral none.
Aspects about the place, the company in general or shipping map to no label.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wordofclick.errors import DataError
from wordofclick.labels import DEFAULT_LABELS

log = logging.getLogger(__name__)

# SemEval-2014 and MAMS name categories in lower case.
FLAT_CATEGORY_ASPECT = {
    "service": "service",
    "staff": "service",
    "food": "product",
    "menu": "product",
    "price": "product",
}
# SemEval-2016 names ENTITY#ATTRIBUTE. Restaurant prices are the product; any laptop entity not
# listed here (LAPTOP, DISPLAY, BATTERY, ...) is a part of the product sold.
SERVICE_ENTITIES = {"SERVICE", "SUPPORT"}
PRODUCT_ENTITIES = {"FOOD", "DRINKS"}
PRODUCT_CATEGORIES = {"RESTAURANT#PRICES"}
UNLABELED_ENTITIES = {"RESTAURANT", "AMBIENCE", "LOCATION", "COMPANY", "SHIPPING"}
POLARITY_SUFFIXES = {
    "negative": ("complaint",),
    "positive": ("praise",),
    "conflict": ("complaint", "praise"),
    "neutral": (),
}


def aspect_of(category: str) -> str | None:
    """The product aspect (``service``/``product``) a category maps to, or ``None``.

    >>> aspect_of("staff"), aspect_of("SUPPORT#QUALITY"), aspect_of("LAPTOP#PRICE")
    ('service', 'service', 'product')
    >>> aspect_of("RESTAURANT#PRICES"), aspect_of("RESTAURANT#GENERAL"), aspect_of("ambience")
    ('product', None, None)
    """
    if "#" not in category:
        return FLAT_CATEGORY_ASPECT.get(category.strip().lower())
    entity = category.split("#", 1)[0].upper()
    if entity in SERVICE_ENTITIES:
        return "service"
    if entity in PRODUCT_ENTITIES or category.upper() in PRODUCT_CATEGORIES:
        return "product"
    if entity in UNLABELED_ENTITIES:
        return None
    return "product"


def labels_for(opinions: Iterable[tuple[str, str]]) -> list[str]:
    """Labels for a sentence from its ``(category, polarity)`` pairs, in a stable order."""
    found: set[str] = set()
    for category, polarity in opinions:
        aspect = aspect_of(category)
        if aspect is None:
            continue
        if polarity not in POLARITY_SUFFIXES:
            raise ValueError(
                f"unknown polarity {polarity!r}; expected one of {', '.join(POLARITY_SUFFIXES)}"
            )
        found.update(f"{aspect}_{suffix}" for suffix in POLARITY_SUFFIXES[polarity])
    return [name for name in DEFAULT_LABELS if name in found]


@dataclass
class AbsaSentence:
    text: str
    opinions: list[tuple[str, str]]
    sentence_id: str
    review_id: str | None


def _parse(path: Path) -> ET.Element:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    # Entity expansion is the classic XML bomb; aspect data never needs a DTD.
    if b"<!DOCTYPE" in raw[:4096] or b"<!ENTITY" in raw:
        raise DataError(f"{path}: XML with a DTD or entities is refused; remove the DOCTYPE")
    try:
        return ET.fromstring(raw)
    except ET.ParseError as error:
        raise DataError(f"{path}: not well-formed XML ({error})") from None


def iter_sentences(path: Path) -> list[AbsaSentence]:
    """Every ``<sentence>`` with its aspect opinions, whichever of the three formats it is."""
    root = _parse(path)
    sentences: list[AbsaSentence] = []
    reviews = root.findall(".//Review")
    containers: Sequence[tuple[str | None, ET.Element]] = (
        [(r.get("rid"), r) for r in reviews] if reviews else [(None, root)]
    )
    for review_id, container in containers:
        for number, node in enumerate(container.iter("sentence")):
            text = node.findtext("text")
            if text is None:
                raise DataError(f"{path}: sentence {node.get('id', number)} has no <text>")
            opinions = [
                (o.get("category", ""), o.get("polarity", ""))
                for o in node.iter()
                if o.tag in ("aspectCategory", "Opinion")
            ]
            sentences.append(
                AbsaSentence(text, opinions, node.get("id") or str(number), review_id)
            )
    if not sentences:
        raise DataError(
            f"{path}: no <sentence> elements; expected SemEval-2014, SemEval-2016 or MAMS XML"
        )
    return sentences


def read_absa(path: str | Path, by_review: bool = False) -> list[dict[str, Any]]:
    """Read one XML file as labeled records (``text``, ``labels``, ``source``, ``id``).

    With ``by_review`` (SemEval-2016 only) the sentences of a review are joined into one
    example whose labels are the union of its sentences' labels.
    """
    path = Path(path)
    sentences = iter_sentences(path)
    try:
        if not by_review:
            return [
                {"text": s.text, "labels": labels_for(s.opinions), "source": path.name,
                 "id": s.sentence_id}
                for s in sentences
            ]
        if any(s.review_id is None for s in sentences):
            raise DataError(
                f"{path}: --reviews needs SemEval-2016 XML with <Review rid=...>; "
                "this file has sentences only"
            )
        grouped: dict[str, list[AbsaSentence]] = {}
        for sentence in sentences:
            grouped.setdefault(str(sentence.review_id), []).append(sentence)
        return [
            {
                "text": " ".join(s.text.strip() for s in group),
                "labels": labels_for(o for s in group for o in s.opinions),
                "source": path.name,
                "id": rid,
            }
            for rid, group in grouped.items()
        ]
    except ValueError as error:
        raise DataError(f"{path}: {error}") from None


@dataclass
class ImportSummary:
    files: int
    read: int
    written: int
    duplicates: int
    label_counts: dict[str, int]


def import_absa(
    paths: Sequence[str | Path], out: str | Path, by_review: bool = False, dedupe: bool = True
) -> ImportSummary:
    """Convert XML files to one labeled JSONL file, dropping repeated texts (first copy wins).

    >>> import_absa(["mams_acsa_train.xml"], "data/mams_train.jsonl")  # doctest: +SKIP
    """
    from wordofclick.data import write_labeled_jsonl

    if not paths:
        raise DataError("no input files: name at least one SemEval or MAMS XML file")
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    read = duplicates = 0
    for path in paths:
        for record in read_absa(path, by_review=by_review):
            read += 1
            key = " ".join(record["text"].lower().split())
            if dedupe and key in seen:
                duplicates += 1
                continue
            seen.add(key)
            records.append(record)
    written = write_labeled_jsonl(records, Path(out))
    counts: dict[str, int] = {}
    for record in records:
        for label in record["labels"] or ["(none)"]:
            counts[label] = counts.get(label, 0) + 1
    log.info("imported %d of %d examples (%d repeated texts skipped)", written, read, duplicates)
    return ImportSummary(len(paths), read, written, duplicates, counts)

"""The bundled corpus: schema, balance, splits, agreement and no (near-)duplicate texts."""

from __future__ import annotations

import importlib.util
import json
import re
from collections import defaultdict
from importlib import resources
from itertools import combinations
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from wordofclick.datasets import SPLITS, load_corpus
from wordofclick.labels import DEFAULT_LABELS
from wordofclick.schema import CHANNELS

PACKAGE = resources.files("wordofclick.datasets")


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    return load_corpus().to_pylist()


@pytest.fixture(scope="module")
def card() -> dict:
    return json.loads(PACKAGE.joinpath("corpus_card.json").read_text(encoding="utf-8"))


def test_size_and_coverage(corpus):
    assert len(corpus) >= 2400
    assert len({r["industry"] for r in corpus}) >= 12
    per_company = defaultdict(int)
    for review in corpus:
        per_company[review["company"]] += 1
    assert len(per_company) >= 60
    assert sum(n < 10 for n in per_company.values()) >= 4  # a few companies with very few reviews


def test_schema(corpus):
    ids = [r["review_id"] for r in corpus]
    assert len(set(ids)) == len(ids)
    dates = [r["created_at"] for r in corpus]
    assert all(d.tzinfo is not None for d in dates)
    assert (max(dates) - min(dates)).days >= 330  # spread over twelve months
    for review in corpus:
        assert review["text"].strip() and review["company"].strip()
        assert review["rating"] in (1, 2, 3, 4, 5)
        assert review["channel"] in CHANNELS
        assert review["split"] in SPLITS
        assert review["labels"] == [n for n in DEFAULT_LABELS if review[n] == 1]
        if review["channel"] == "other":
            assert review["shares"] is None and review["likes"] is None


def test_label_balance(corpus):
    n = len(corpus)
    for label in DEFAULT_LABELS:
        assert sum(r[label] for r in corpus) / n >= 0.15, label
    assert sum(not r["labels"] for r in corpus) / n >= 0.15
    both = sum(
        (r["service_complaint"] or r["service_praise"]) and (r["product_complaint"]
                                                             or r["product_praise"])
        for r in corpus
    )
    assert both / n >= 0.10


def test_no_company_in_two_splits(corpus):
    splits = defaultdict(set)
    for review in corpus:
        splits[review["company"]].add(review["split"])
    assert all(len(s) == 1 for s in splits.values())
    by_split = {s: {c for c, ss in splits.items() if s in ss} for s in SPLITS}
    assert all(by_split.values())
    # every industry is represented in test, so per-industry scores exist
    industries = {r["industry"] for r in corpus}
    assert {r["industry"] for r in corpus if r["split"] == "test"} == industries


def test_rising_service_complaints(corpus, card):
    assert len(card["rising_companies"]) >= 2
    for company in card["rising_companies"]:
        rows = sorted((r for r in corpus if r["company"] == company), key=lambda r: r["created_at"])
        half = len(rows) // 2
        early = sum(r["service_complaint"] for r in rows[:half]) / half
        late = sum(r["service_complaint"] for r in rows[half:]) / (len(rows) - half)
        assert late > early + 0.25, company


def shingles(text: str, size: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}


def test_no_duplicate_or_near_duplicate_texts(corpus):
    normalised = [" ".join(re.findall(r"\w+", r["text"].lower())) for r in corpus]
    assert len(set(normalised)) == len(normalised)
    sets = [shingles(r["text"]) for r in corpus]
    index = defaultdict(list)
    for i, s in enumerate(sets):
        for shingle in s:
            index[shingle].append(i)
    shared = defaultdict(int)
    for members in index.values():
        if len(members) < 20:  # very common phrases cannot make two reviews near-duplicates
            for a, b in combinations(members, 2):
                shared[a, b] += 1
    near = [
        (corpus[a]["review_id"], corpus[b]["review_id"])
        for (a, b), k in shared.items()
        if k / min(len(sets[a]), len(sets[b])) >= 0.5 and min(len(sets[a]), len(sets[b])) >= 4
    ]
    assert near == []


def test_agreement_in_the_card_is_recomputed_from_the_annotations(corpus, card):
    annotations = [
        json.loads(line)
        for line in PACKAGE.joinpath("annotations.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [a["review_id"] for a in annotations] == [r["review_id"] for r in corpus]
    for label in DEFAULT_LABELS:
        a = [int(label in x["labels_a"]) for x in annotations]
        b = [int(label in x["labels_b"]) for x in annotations]
        assert cohen_kappa_score(a, b) == pytest.approx(card["cohen_kappa"][label], abs=1e-4)
    for annotation, review in zip(annotations, corpus, strict=True):
        assert annotation["final"] == review["labels"]
        if annotation["labels_a"] != annotation["labels_b"]:
            assert annotation["note"], annotation["review_id"]  # every disagreement reconciled


def test_datasheet_quotes_the_card(card):
    datasheet = PACKAGE.joinpath("DATASHEET.md").read_text(encoding="utf-8")
    for label, kappa in card["cohen_kappa"].items():
        assert f"| {label} | {kappa:.3f} |" in datasheet
    assert f"{card['reviews']:,} reviews" in datasheet


def test_load_corpus_split_and_errors():
    test = load_corpus("test")
    assert 0 < test.num_rows < load_corpus().num_rows
    assert set(test.column("split").to_pylist()) == {"test"}
    with pytest.raises(ValueError, match="expected one of train, dev, test"):
        load_corpus("validation")


def test_the_default_config_reads_every_bundled_review_whole():
    """The default model's maximum length covers the longest review of the bundled corpus."""
    from transformers import AutoTokenizer

    from wordofclick.model import locate_base_model
    from wordofclick.settings import load_settings
    from wordofclick.train import TrainSettings

    config = Path(__file__).resolve().parents[1] / "configs" / "train.yaml"
    settings = load_settings(TrainSettings, config, [])
    tokenizer = AutoTokenizer.from_pretrained(locate_base_model(settings.base_model))
    lengths = [len(ids) for ids in tokenizer(load_corpus()["text"].to_pylist())["input_ids"]]
    assert max(lengths) <= settings.max_length


def _build_module():
    script = Path(__file__).resolve().parents[1] / "scripts" / "build_corpus.py"
    spec = importlib.util.spec_from_file_location("build_corpus", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_build_script_rewrites_the_packaged_corpus(card):
    built = _build_module().build()
    for name in ("corpus", "annotations"):
        packaged = [json.loads(line) for line in
                    PACKAGE.joinpath(f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]
        assert built[name] == packaged, name
    assert built["card"] == card


def test_companies_pinned_to_a_split_leave_the_other_reviews_unchanged(monkeypatch):
    """Companies written later must not shift the dates, engagement or relative order of the
    reviews written before them."""
    module = _build_module()
    everything = module.build()["corpus"]
    original = module.load_industry
    monkeypatch.setattr(module, "load_industry",
                        lambda industry: [r for r in original(industry) if "split" not in r])
    without_pinned = module.build()["corpus"]
    pinned = {r["review_id"] for r in everything} - {r["review_id"] for r in without_pinned}
    assert pinned, "no company is pinned to a split"
    assert [r for r in everything if r["review_id"] not in pinned] == without_pinned
    assert {r["split"] for r in everything if r["review_id"] in pinned} == {"train", "test"}


def test_every_industry_has_two_test_companies_and_one_dev_company(corpus):
    companies = defaultdict(set)
    for review in corpus:
        companies[review["industry"], review["split"]].add(review["company"])
    industries = {r["industry"] for r in corpus}
    assert all(len(companies[i, "test"]) == 2 for i in industries)
    assert all(len(companies[i, "dev"]) == 1 for i in industries)


def test_every_industry_trains_on_a_company_mostly_complained_about_for_its_product(corpus):
    """Fees, bills, claims and food complaints must be seen where they dominate a company, not
    only beside service complaints (the sixth batch, DATASHEET.md)."""
    reviews = defaultdict(list)
    for review in corpus:
        if review["split"] == "train":
            reviews[review["industry"], review["company"]].append(review["product_complaint"])
    heaviest = defaultdict(float)
    for (industry, _), flags in reviews.items():
        heaviest[industry] = max(heaviest[industry], sum(flags) / len(flags))
    assert len(heaviest) == 12 and min(heaviest.values()) > 0.5, heaviest

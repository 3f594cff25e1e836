"""The scale-test generator: schema, determinism, ids, batching, companies, dates. No timing."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from wordofclick import synthetic
from wordofclick.errors import ConfigError
from wordofclick.reviews import ReviewReader
from wordofclick.schema import CHANNELS, REVIEW_SCHEMA
from wordofclick.synthetic import (
    BLOCK_ROWS,
    DEFAULT_START,
    INDUSTRIES,
    company_industries,
    company_names,
    generate_reviews,
    write_reviews,
)

UTC = timezone.utc
SOCIAL = ("facebook", "twitter", "instagram")


def table(n: int, **options) -> pa.Table:
    return pa.Table.from_batches(list(generate_reviews(n, **options)), schema=REVIEW_SCHEMA)


@pytest.fixture(scope="module")
def sample() -> pa.Table:
    """Two blocks' worth of rows over 60 companies: enough for the shape checks below."""
    return table(2 * BLOCK_ROWS, companies=60, days=90, start="2026-01-01", seed=7)


def test_module_says_synthetic_unlabeled_scale_tests_only():
    doc = " ".join(synthetic.__doc__.replace("*", "").lower().split())
    for words in ("synthetic", "unlabeled", "scale tests", "never use them for training"):
        assert words in doc


def test_batches_are_in_the_review_schema(sample):
    for batch in generate_reviews(25, companies=3, batch_rows=10):
        assert batch.schema.equals(REVIEW_SCHEMA, check_metadata=True)
    assert sample.schema.equals(REVIEW_SCHEMA)
    for name in ("review_id", "company", "text"):
        assert sample.column(name).null_count == 0


def test_same_seed_same_rows_whatever_the_batching():
    a = table(12_345, companies=40, seed=3)
    assert a.equals(table(12_345, companies=40, seed=3, batch_rows=999))
    assert a.equals(table(12_345, companies=40, seed=3, batch_rows=BLOCK_ROWS))
    assert not a.column("text").equals(table(12_345, companies=40, seed=4).column("text"))


def test_rows_do_not_depend_on_n():
    assert table(BLOCK_ROWS + 10, companies=20).slice(0, 50).equals(table(50, companies=20))


def test_same_seed_same_rows_in_another_process():
    """Nothing may depend on the process, such as the iteration order of a set of strings."""
    script = (
        "import hashlib, sys;"
        "from wordofclick.synthetic import generate_reviews;"
        "b = next(generate_reviews(300, companies=30, seed=5));"
        "sys.stdout.write(hashlib.sha256('\\x00'.join(b.column('text').to_pylist())"
        ".encode()).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    texts = next(generate_reviews(300, companies=30, seed=5)).column("text").to_pylist()
    assert other == hashlib.sha256("\x00".join(texts).encode()).hexdigest()


def test_review_ids_unique_and_stable(sample):
    ids = sample.column("review_id").to_pylist()
    assert len(set(ids)) == len(ids)
    assert ids[:2] == ["syn-7-0000000000", "syn-7-0000000001"]
    assert ids[-1] == f"syn-7-{2 * BLOCK_ROWS - 1:010d}"
    other_seed = table(10, companies=60, seed=8).column("review_id").to_pylist()
    assert not set(other_seed) & set(ids)


@pytest.mark.parametrize(("n", "batch_rows"), [(0, 5), (1, 5), (23, 5), (25, 5), (10_001, 4_000)])
def test_batches_are_bounded(n, batch_rows):
    sizes = [batch.num_rows for batch in generate_reviews(n, companies=5, batch_rows=batch_rows)]
    assert sum(sizes) == n
    assert all(size == batch_rows for size in sizes[:-1])
    assert all(0 < size <= batch_rows for size in sizes)


def test_company_names_distinct_stable_and_not_the_corpus():
    names = company_names(5_000)
    assert len(set(names)) == 5_000
    assert names[:12] == company_names(12)
    assert all(len(name.split()) >= 3 for name in names)
    assert company_industries(24) == list(INDUSTRIES) * 2
    assert len(INDUSTRIES) == 12
    many = company_names(12 * 64 * 64 * 5 + 24)  # past one industry's word combinations
    assert len(set(many)) == len(many)
    from wordofclick.datasets import corpus_path, load_corpus

    if corpus_path().is_file():
        assert not set(names) & set(load_corpus().column("company").to_pylist())


def test_company_count(sample):
    seen = set(sample.column("company").to_pylist())
    assert seen == set(company_names(60))
    own = table(500, companies=["Acme Corp", "Globex"])
    assert set(own.column("company").to_pylist()) == {"Acme Corp", "Globex"}


def test_dates_within_range(sample):
    low, high = pc.min_max(sample.column("created_at")).values()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert start <= low.as_py() and high.as_py() < start + timedelta(days=90)
    days = pc.cast(sample.column("created_at"), pa.int64()).to_numpy() // 86_400_000_000
    assert len(np.unique(days)) == 90  # spread over every day
    one_day = table(300, companies=5, days=1, start=date(2024, 2, 29))
    low, high = pc.min_max(one_day.column("created_at")).values()
    assert low.as_py() >= datetime(2024, 2, 29, tzinfo=UTC)
    assert high.as_py() < datetime(2024, 3, 1, tzinfo=UTC)
    default = table(1_000, companies=5)
    low, high = pc.min_max(default.column("created_at")).values()
    assert low.as_py() >= DEFAULT_START and high.as_py() < DEFAULT_START + timedelta(days=365)


def test_channels_ratings_and_engagement(sample):
    channel = np.array(sample.column("channel").to_pylist())
    assert set(channel) == set(CHANNELS)
    rating = sample.column("rating")
    assert set(rating.drop_null().to_pylist()) == {1, 2, 3, 4, 5}
    rated = np.array(rating.is_valid().to_pylist())
    assert rated[channel == "review_site"].all()
    assert not rated[np.isin(channel, ("twitter", "instagram"))].any()
    social = np.isin(channel, SOCIAL)
    for name in ("shares", "likes"):
        column = sample.column(name)
        assert (np.array(column.is_valid().to_pylist()) == social).all()
        assert pc.min(column).as_py() >= 0
    assert pc.max(sample.column("likes")).as_py() > 50  # heavy tail


def test_texts_look_like_reviews(sample):
    texts = sample.column("text").to_pylist()
    words = np.array([len(text.split()) for text in texts])
    assert words.min() >= 1 and np.percentile(words, 5) <= 4  # a few words
    assert 15 <= np.median(words) <= 80
    assert words.max() >= 200  # long complaint letters
    assert len(set(texts)) > 0.8 * len(texts)
    assert any(text.isupper() for text in texts)  # all caps
    assert any("\n\n" in text for text in texts)  # paragraphs
    assert any(text.startswith("@") for text in texts)  # tweets at the company
    assert any("😡" in text or "👍" in text for text in texts)
    assert any(typo in text for text in texts for typo in ("definately", " teh ", "becuase"))
    assert not any("{" in text or "  " in text or text != text.strip() for text in texts)


def test_texts_use_each_industry_vocabulary():
    batch = table(3_000, companies=12)
    text = dict(zip(company_industries(12), [[] for _ in range(12)], strict=True))
    industry = dict(zip(company_names(12), company_industries(12), strict=True))
    for company, review in zip(
        batch.column("company").to_pylist(), batch.column("text").to_pylist(), strict=True
    ):
        text[industry[company]].append(review.lower())
    assert any("flight" in review or "luggage" in review for review in text["airlines"])
    assert any("meter" in review or "tariff" in review for review in text["utilities"])
    assert not any("luggage" in review for review in text["restaurants"])


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_write_reviews_reads_back_without_rejects(tmp_path, suffix):
    path = tmp_path / f"reviews{suffix}"
    assert write_reviews(path, 1_200, companies=8, seed=2, batch_rows=500) == 1_200
    reader = ReviewReader(path, chunk_rows=1_000)
    chunks = list(reader)
    assert sum(chunk.rejects.num_rows for chunk in chunks) == 0
    reviews = pa.concat_tables(chunk.reviews for chunk in chunks)
    expected = table(1_200, companies=8, seed=2)
    assert reviews.column("review_id").equals(expected.column("review_id"))
    if suffix == ".parquet":
        assert pq.read_table(path).equals(expected)
    else:
        assert reviews.column("likes").equals(expected.column("likes"))


@pytest.mark.parametrize(
    "options",
    [
        {"n": -1},
        {"n": 1.5},
        {"companies": 0},
        {"companies": []},
        {"companies": ["ok", " "]},
        {"companies": "Acme"},
        {"days": 0},
        {"batch_rows": 0},
        {"seed": -1},
        {"start": "yesterday"},
    ],
)
def test_bad_arguments_are_refused_at_once(options):
    arguments = {"n": 10, **options}
    with pytest.raises(ConfigError):
        generate_reviews(**arguments)  # raises before the first batch is asked for

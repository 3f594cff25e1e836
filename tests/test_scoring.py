"""The engine-agnostic scorer and the local streaming loop, on the tiny model."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from wordofclick.cli import main
from wordofclick.errors import ConfigError, DataError
from wordofclick.model import ComplaintClassifier
from wordofclick.reviews import REJECT_SCHEMA
from wordofclick.schema import REVIEW_COLUMNS, pred_column, prob_column
from wordofclick.scoring import ReviewScorer, score_file

from .test_reviews import BROKEN_CSV, sample_reviews, write_csv

LABELS = ("service_complaint", "product_complaint", "service_praise", "product_praise")
SCORE_COLUMNS = [prob_column(n) for n in LABELS] + [pred_column(n) for n in LABELS]


@pytest.fixture(scope="module")
def scorer(tiny_model_dir) -> Iterator[ReviewScorer]:
    import torch

    threads = torch.get_num_threads()
    # One thread: on a busy 2-core machine torch's thread pool makes tiny batches 50x slower.
    yield ReviewScorer(tiny_model_dir, backend="torch", num_threads=1)
    torch.set_num_threads(threads)


def read_output(path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    if path.suffix == ".csv":
        return pa_csv.read_csv(path)
    return pa.Table.from_pylist([json.loads(line) for line in path.read_text().splitlines()])


def test_scorer_appends_scores_to_any_batch(scorer):
    texts = ["the waiter was rude", "the pasta was great", "late delivery"]
    table = pa.table({"text": texts, "keep": [1, 2, 3]})
    scored = scorer(table)
    assert scored.column_names == ["text", "keep", *SCORE_COLUMNS, "model_name", "model_version"]
    expected = scorer.classifier.predict_proba(texts)
    got = np.stack([scored.column(prob_column(n)).to_numpy() for n in LABELS], axis=1)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    decisions = np.stack([scored.column(pred_column(n)).to_numpy() for n in LABELS], axis=1)
    assert (decisions == scorer.classifier.decide(expected)).all()
    assert set(scored.column("model_name").to_pylist()) == {"tiny"}
    assert set(scored.column("model_version").to_pylist()) == {"test"}

    # Ray's numpy batch format: a dict in, a dict of arrays out.
    as_dict = scorer({"text": np.array(texts, dtype=object), "keep": np.array([1, 2, 3])})
    np.testing.assert_allclose(as_dict[prob_column(LABELS[0])], got[:, 0])
    # Scoring a scored table replaces the old scores instead of adding a second set.
    assert scorer(scored).column_names == scored.column_names
    assert scorer(table.slice(0, 0)).num_rows == 0


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_score_file_round_trip(tmp_path, scorer, suffix):
    rows = sample_reviews(9)
    source = write_csv(tmp_path / "in.csv", [{**r, "extra": "kept"} for r in rows])
    output = tmp_path / f"scored{suffix}"
    summary = score_file(scorer, source, output, chunk_rows=4, progress=False)
    assert (summary.read, summary.scored, summary.rejected) == (9, 9, 0)
    table = read_output(output)
    assert table.column_names == [
        *REVIEW_COLUMNS,
        "extra",
        *SCORE_COLUMNS,
        "model_name",
        "model_version",
    ]
    assert table.column("review_id").to_pylist() == [r["review_id"] for r in rows]
    assert set(table.column("extra").to_pylist()) == {"kept"}


def test_broken_file_counts_add_up_and_rejects_are_written(tmp_path, scorer):
    source = tmp_path / "broken.csv"
    source.write_bytes(BROKEN_CSV)
    summary = score_file(
        scorer,
        source,
        tmp_path / "out.parquet",
        rejects=tmp_path / "rej.csv",
        chunk_rows=3,
        progress=False,
    )
    assert summary.read == summary.scored + summary.rejected == 14
    assert (summary.scored, summary.duplicates, summary.truncated) == (4, 1, 1)
    rejects = pa_csv.read_csv(tmp_path / "rej.csv")
    assert rejects.column_names == REJECT_SCHEMA.names
    assert rejects.num_rows == summary.rejected
    assert sum(summary.rejected_by_reason.values()) == summary.rejected
    text = "\n".join(summary.lines())
    assert "read 14 rows: scored 4, rejected 10" in text
    assert "duplicate review_id 1" in text
    assert "cut 1 texts longer than" in text


def test_identical_results_whatever_the_chunk_size(tmp_path, scorer):
    rows = sample_reviews(40)
    source = write_csv(tmp_path / "in.csv", rows + rows[:5])  # five duplicates at the end
    tables = []
    for chunk_rows in (3, 16, 1000):
        output = tmp_path / f"out-{chunk_rows}.parquet"
        summary = score_file(scorer, source, output, chunk_rows=chunk_rows, progress=False)
        assert (summary.scored, summary.duplicates) == (40, 5)
        tables.append(pq.read_table(output))
    for table in tables[1:]:
        assert table.select([*REVIEW_COLUMNS, *SCORE_COLUMNS[4:]]).equals(
            tables[0].select([*REVIEW_COLUMNS, *SCORE_COLUMNS[4:]])
        )
        for name in SCORE_COLUMNS[:4]:
            # Batches group texts differently, so float sums may differ in the last bits.
            np.testing.assert_allclose(
                table[name].to_numpy(), tables[0][name].to_numpy(), atol=1e-5
            )


def test_memory_stays_bounded_on_a_large_input(tmp_path, scorer):
    n = 3_000
    rows = [
        {"review_id": str(i), "company": f"c{i % 7}", "text": f"slow service {i}"} for i in range(n)
    ]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "big.parquet", row_group_size=500)
    summary = score_file(
        scorer, tmp_path / "big.parquet", tmp_path / "out.parquet", chunk_rows=30, progress=False
    )
    assert summary.read == summary.scored == n
    assert summary.max_rows_held <= 2 * 30
    out = pq.ParquetFile(tmp_path / "out.parquet")
    assert out.metadata.num_rows == n
    assert max(out.metadata.row_group(i).num_rows for i in range(out.num_row_groups)) <= 30


def test_empty_input_gives_empty_output_with_header(tmp_path, scorer):
    source = tmp_path / "empty.csv"
    source.write_text("review_id,company,text\n")
    summary = score_file(scorer, source, tmp_path / "out.csv", progress=False)
    assert (summary.read, summary.scored, summary.rejected) == (0, 0, 0)
    header = (tmp_path / "out.csv").read_text().strip().replace('"', "").split(",")
    assert header == [*REVIEW_COLUMNS, *SCORE_COLUMNS, "model_name", "model_version"]


def test_bad_input_or_output_fails_before_loading_the_model(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        score_file("no-model-needed", tmp_path / "missing.csv", tmp_path / "out.parquet")
    source = write_csv(tmp_path / "in.csv", sample_reviews(2))
    with pytest.raises(ConfigError, match=r"out\.xlsx"):
        score_file("no-model-needed", source, tmp_path / "out.xlsx")


def test_classifier_score_file_yields_scored_chunks(tmp_path, scorer):
    source = write_csv(tmp_path / "in.csv", sample_reviews(5))
    classifier: ComplaintClassifier = scorer.classifier
    chunks = list(classifier.score_file(source, chunk_rows=2))
    assert [c.reviews.num_rows for c in chunks] == [2, 2, 1]
    assert prob_column(LABELS[0]) in chunks[0].reviews.column_names


def test_cli_score(tmp_path, tiny_model_dir):
    source = tmp_path / "yelp.jsonl"
    source.write_text(
        '{"id": "1", "business_id": "b", "review_body": "rude staff"}\n'
        '{"id": "2", "business_id": "b", "review_body": ""}\n'
    )
    runner = CliRunner()
    args = [
        "score",
        "--model",
        str(tiny_model_dir),
        "--input",
        str(source),
        "--quiet",
        "--output",
        str(tmp_path / "out.parquet"),
        "--rejects",
        str(tmp_path / "rej.jsonl"),
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 1
    assert "no column 'review_id'" in result.output
    assert "--columns review_id=<column>" in result.output

    mapping = ["--columns", "review_id=id,company=business_id,text=review_body"]
    result = runner.invoke(main, args + mapping)
    assert result.exit_code == 0, result.output
    assert "read 2 rows: scored 1, rejected 1 (missing text 1)" in result.output
    assert "backend torch" in result.output  # auto: no ONNX export in this folder
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 1

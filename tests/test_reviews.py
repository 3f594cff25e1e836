"""Readers, validation, rejects and writers: no model needed."""

from __future__ import annotations

import csv
import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from wordofclick.errors import ConfigError, DataError
from wordofclick.reviews import (
    MAX_TEXT_CHARS,
    REJECT_SCHEMA,
    ReviewReader,
    SeenIds,
    TableWriter,
    parse_columns,
)
from wordofclick.schema import REVIEW_COLUMNS, REVIEW_SCHEMA

UTC = timezone.utc


def sample_reviews(n: int = 6) -> list[dict]:
    return [
        {
            "review_id": f"r{i}",
            "company": f"Company {i % 3}",
            "text": f'Review {i}, with a comma and "quotes"' + "\nand a second line" * (i % 2),
            "created_at": datetime(2024, 5, 1 + i % 28, 12, 30, tzinfo=UTC),
            "rating": 1 + i % 5,
            "channel": ["twitter", "facebook", "review_site"][i % 3],
            "shares": i * 2,
            "likes": i * 3,
        }
        for i in range(n)
    ]


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
            )
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, default=lambda v: v.isoformat()) + "\n")
    return path


def read_all(reader: ReviewReader) -> tuple[pa.Table, pa.Table]:
    chunks = list(reader)
    if not chunks:
        return reader.schema.empty_table(), REJECT_SCHEMA.empty_table()
    return (
        pa.concat_tables([c.reviews for c in chunks]),
        pa.concat_tables([c.rejects for c in chunks]),
    )


def test_parse_columns():
    assert parse_columns("text=review_body, company=business_id") == {
        "text": "review_body",
        "company": "business_id",
    }
    assert parse_columns(None) == {}
    with pytest.raises(ConfigError, match="expected one of review_id"):
        parse_columns("txt=body")
    with pytest.raises(ConfigError, match="not of the form"):
        parse_columns("text")


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "jsonl", "parquet"])
def test_round_trip_each_input_format(tmp_path, fmt):
    rows = sample_reviews()
    if fmt.startswith("csv"):
        path = write_csv(tmp_path / "in.csv", rows)
        if fmt == "csv.gz":
            path = tmp_path / "in.csv.gz"
            path.write_bytes(gzip.compress((tmp_path / "in.csv").read_bytes()))
    elif fmt == "jsonl":
        path = write_jsonl(tmp_path / "in.jsonl", rows)
    else:
        path = tmp_path / "in.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=REVIEW_SCHEMA), path)
    reader = ReviewReader(path, chunk_rows=4)
    reviews, rejects = read_all(reader)
    assert rejects.num_rows == 0
    assert reviews.schema.equals(REVIEW_SCHEMA)
    assert reviews.to_pylist() == rows
    assert reader.stats.read == reader.stats.valid == len(rows)


def test_column_mapping_and_extra_columns(tmp_path):
    path = tmp_path / "yelp.jsonl"
    write_jsonl(
        path,
        [
            {
                "id": 1,
                "business_id": "b1",
                "review_body": "Slow service",
                "stars": 2,
                "tags": ["x"],
            },
            {"id": 2, "business_id": "b2", "review_body": "Fine", "stars": 5, "tags": None},
        ],
    )
    with pytest.raises(DataError, match=r"yelp.jsonl: no column 'review_id'.*--columns review_id="):
        ReviewReader(path)
    reader = ReviewReader(path, columns="review_id=id,company=business_id,text=review_body")
    reviews, rejects = read_all(reader)
    assert rejects.num_rows == 0
    assert reviews.column_names == [*REVIEW_COLUMNS, "stars", "tags"]
    assert reviews.column("review_id").to_pylist() == ["1", "2"]
    # Extra JSONL fields are kept as text, so every chunk has the same schema.
    assert reviews.column("stars").to_pylist() == ["2", "5"]
    assert reviews.column("tags").to_pylist() == ['["x"]', None]


def test_parquet_extra_columns_keep_their_types(tmp_path):
    table = pa.table({"review_id": ["a"], "company": ["c"], "text": ["t"], "score": [0.5]})
    pq.write_table(table, tmp_path / "a.parquet")
    reviews, _ = read_all(ReviewReader(tmp_path / "a.parquet"))
    assert reviews.schema.field("score").type == pa.float64()
    pq.write_table(table.set_column(3, "score", pa.array(["high"])), tmp_path / "b.parquet")
    with pytest.raises(DataError, match="'score' is string here but double"):
        ReviewReader([tmp_path / "a.parquet", tmp_path / "b.parquet"])


BROKEN_CSV = (
    b"review_id,company,text,created_at,rating\n"  # line 1
    b"ok1,Acme,Fine service,2024-05-01,5\n"  # 2
    b"no-company,,Where is the company,,\n"  # 3
    b"empty-text,Acme,   ,,\n"  # 4
    b"bad-utf8,Acme,caf\xe9 latte,,\n"  # 5
    b"nul,Acme,a NUL \x00 byte,,\n"  # 6
    b"bad-date,Acme,Dated,yesterday,\n"  # 7
    b"bad-rating,Acme,Rated,,five\n"  # 8
    b"short,Acme\n"  # 9
    b'bad-quote,Acme,"closed"then more,,\n'  # 10
    b'ok2,Acme,"multi\nline text",,\n'  # 11-12
    b"ok1,Acme,Same id again,,\n"  # 13
    b"long,Acme," + b"x" * 1_000_000 + b",,\n"  # 14
    b'open-quote,Acme,"never closed,,\n'  # 15
    b"ok3,Acme,Read again after the open quote,,\n"  # 16
)


def test_broken_csv_rejects_every_bad_row_and_counts_add_up(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_bytes(BROKEN_CSV)
    reader = ReviewReader(path, chunk_rows=5)
    reviews, rejects = read_all(reader)
    assert reviews.column("review_id").to_pylist() == ["ok1", "ok2", "long", "ok3"]
    assert reviews.column("text").to_pylist()[1] == "multi\nline text"
    assert len(reviews.column("text")[2].as_py()) == MAX_TEXT_CHARS
    by_line = {r["line"]: (r["review_id"], r["reason"]) for r in rejects.to_pylist()}
    assert by_line == {
        3: ("no-company", "missing company"),
        4: ("empty-text", "missing text"),
        5: ("bad-utf8", "invalid UTF-8"),
        6: ("nul", "NUL byte"),
        7: ("bad-date", "invalid created_at"),
        8: ("bad-rating", "invalid rating"),
        9: (None, "wrong number of fields"),
        10: (None, "malformed CSV"),
        13: ("ok1", "duplicate review_id"),
        15: (None, "malformed CSV"),
    }
    assert all(r["source"] == str(path) for r in rejects.to_pylist())
    raw = {r["line"]: r["raw"] for r in rejects.to_pylist()}
    assert "caf\\xe9 latte" in raw[5]
    assert "\\x00" in raw[6]
    stats = reader.stats
    assert (stats.read, stats.valid, stats.rejected, stats.duplicates, stats.truncated) == (
        14,
        4,
        10,
        1,
        1,
    )
    assert stats.read == stats.valid + stats.rejected
    assert stats.rejected_by_reason["malformed CSV"] == 2


def test_broken_jsonl(tmp_path):
    path = tmp_path / "broken.jsonl"
    lines = [
        b'{"review_id": "a", "company": "c", "text": "good"}',
        b'{"review_id": "b", "company": "c", "text": 42}',
        b'{"review_id": "c", "company": "c", "text": "cut',
        b'["not", "an", "object"]',
        b'{"review_id": "d", "company": "c", "text": "caf\xe9"}',
        b'{"review_id": "e", "company": "c", "text": "nul \\u0000 inside"}',
        b"",
        b'{"review_id": "f", "company": "c"}',
        b'{"review_id": "g", "company": "c", "text": "ok", "shares": -1}',
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    reader = ReviewReader(path)
    reviews, rejects = read_all(reader)
    assert reviews.column("review_id").to_pylist() == ["a"]
    got = [(r["line"], r["row"], r["reason"]) for r in rejects.to_pylist()]
    assert got == [
        (2, 2, "non-text content"),
        (3, 3, "unparseable line"),
        (4, 4, "unparseable line"),
        (5, 5, "invalid UTF-8"),
        (6, 6, "NUL byte"),
        (8, 7, "missing text"),
        (9, 8, "invalid shares"),
    ]
    assert reader.stats.read == 8 == reader.stats.valid + reader.stats.rejected


def test_identical_results_whatever_the_chunk_size(tmp_path):
    path = tmp_path / "broken.csv"
    path.write_bytes(BROKEN_CSV)
    results = [read_all(ReviewReader(path, chunk_rows=n)) for n in (1, 2, 3, 7, 10_000)]
    for reviews, rejects in results[1:]:
        assert reviews.equals(results[0][0])
        assert rejects.equals(results[0][1])


def test_unreadable_inputs_are_refused(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        ReviewReader(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="no file matches"):
        ReviewReader(str(tmp_path / "*.csv"))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match=r"notes\.txt: not a review file"):
        ReviewReader(tmp_path / "notes.txt")
    (tmp_path / "fake.parquet").write_text("not parquet")
    with pytest.raises(DataError, match=r"fake\.parquet: not a readable Parquet file"):
        ReviewReader(tmp_path / "fake.parquet")
    (tmp_path / "semi.csv").write_text("review_id;company;text\n1;a;b\n")
    with pytest.raises(DataError, match="semicolon-separated"):
        ReviewReader(tmp_path / "semi.csv")
    (tmp_path / "mapped.csv").write_text("id,company,text\n")
    with pytest.raises(DataError, match="--columns maps review_id to 'key'"):
        ReviewReader(tmp_path / "mapped.csv", columns="review_id=key")


def test_folder_and_glob_inputs(tmp_path):
    rows = sample_reviews(6)
    (tmp_path / "in").mkdir()
    write_csv(tmp_path / "in" / "a.csv", rows[:3])
    write_jsonl(tmp_path / "in" / "b.jsonl", rows[3:])
    (tmp_path / "in" / "_SUCCESS").write_text("")
    for inputs in (tmp_path / "in", str(tmp_path / "in" / "*.*")):
        reviews, _ = read_all(ReviewReader(inputs, chunk_rows=4))
        assert reviews.column("review_id").to_pylist() == [r["review_id"] for r in rows]


def test_empty_input_gives_a_schema_and_no_rows(tmp_path):
    (tmp_path / "empty.csv").write_text("review_id,company,text,extra\n")
    (tmp_path / "nothing.jsonl").write_text("")
    reader = ReviewReader([tmp_path / "empty.csv", tmp_path / "nothing.jsonl"])
    assert list(reader) == []
    assert reader.schema.names == [*REVIEW_COLUMNS, "extra"]
    assert reader.count_rows() == 0
    out = tmp_path / "out.csv"
    with TableWriter(out, reader.schema):
        pass
    assert out.read_text().splitlines() == [",".join(f'"{n}"' for n in reader.schema.names)]


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_writers_round_trip(tmp_path, suffix):
    table = pa.Table.from_pylist(sample_reviews(), schema=REVIEW_SCHEMA)
    table = table.set_column(2, "text", pa.array(["=cmd()", *table.column("text").to_pylist()[1:]]))
    path = tmp_path / f"out{suffix}"
    with TableWriter(path, table.schema) as writer:
        writer.write(table.slice(0, 4))
        writer.write(table.slice(4))
    # Whatever we write, the reader reads back (a scored file can be scored again).
    reviews, rejects = read_all(ReviewReader(path, chunk_rows=3))
    assert rejects.num_rows == 0
    expected = table.to_pylist()
    if suffix == ".csv":
        expected[0]["text"] = "'=cmd()"  # spreadsheet formula neutralised
    assert reviews.to_pylist() == expected
    if suffix == ".csv":
        assert pa_csv.read_csv(path).num_rows == table.num_rows


def test_writer_leaves_nothing_behind_on_error(tmp_path):
    path = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError), TableWriter(path, REVIEW_SCHEMA):
        raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ConfigError, match=r"name the file \.parquet, \.csv or \.jsonl"):
        TableWriter(tmp_path / "out.xlsx", REVIEW_SCHEMA)


def test_seen_ids_across_many_chunks():
    seen = SeenIds()
    for start in range(0, 5000, 100):
        assert not seen.mark([str(i) for i in range(start, start + 100)]).any()
    assert seen.mark(["0", "4999", "5000", "5000"]).tolist() == [True, True, False, True]
    assert len(seen) == 5001


def test_reader_holds_a_bounded_number_of_rows(tmp_path):
    rows = [{"review_id": str(i), "company": "c", "text": f"text {i}"} for i in range(20_000)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "big.parquet", row_group_size=5_000)
    write_csv(tmp_path / "big.csv", rows)
    for name in ("big.parquet", "big.csv"):
        reader = ReviewReader(tmp_path / name, chunk_rows=50)
        assert reader.count_rows() == 20_000
        chunks = sum(1 for _ in reader)
        assert chunks == 400
        assert reader.stats.valid == 20_000
        assert reader.stats.max_rows_held <= 2 * 50

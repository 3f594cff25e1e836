"""Labeled data files: formats, label encodings and the errors a user sees."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wordofclick.data import combine, load_labeled
from wordofclick.errors import DataError
from wordofclick.labels import LabelSet

LABELS = LabelSet.default()


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_label_list_and_binary_columns_agree(tmp_path):
    listed = write_jsonl(tmp_path / "a.jsonl", [
        {"text": "rude staff", "labels": ["service_complaint"]},
        {"text": "nice", "labels": []},
    ])
    binary = tmp_path / "b.csv"
    binary.write_text(
        "text,service_complaint,product_complaint,service_praise,product_praise\n"
        "rude staff,1,0,0,0\nnice,0,0,0,0\n", encoding="utf-8"
    )
    a, b = load_labeled(listed, LABELS), load_labeled(binary, LABELS)
    np.testing.assert_array_equal(a.targets, b.targets)
    assert a.fingerprint() == b.fingerprint()


def test_parquet_and_csv_label_strings(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"text": ["a", "b"], "labels": [["product_praise"], []]}), path)
    assert load_labeled(path, LABELS).targets[:, 3].tolist() == [1, 0]
    csv = tmp_path / "y.csv"
    csv.write_text('text,labels\n"bad, cold",product_complaint|service_complaint\n')
    assert load_labeled(csv, LABELS).targets.tolist() == [[1, 1, 0, 0]]


def test_rows_without_text_are_set_aside_with_reason(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [
        {"text": "fine", "labels": []}, {"text": "  ", "labels": []}, {"labels": []},
    ])
    data = load_labeled(path, LABELS)
    assert len(data) == 1
    assert [(s.row, s.reason) for s in data.set_aside] == [
        (2, "empty or missing text"), (3, "empty or missing text")
    ]


@pytest.mark.parametrize(
    ("content", "pattern"),
    [
        ("", "no rows"),
        ('{"review": "x", "labels": []}\n', "no 'text' column.*rename"),
        ('{"text": "x"}\n', "no 'labels' column and no 0/1 column"),
        ('{"text": "x", "labels": ["delivery_complaint"]}\n',
         r"row 1: unknown label 'delivery_complaint': expected one of service_complaint"),
        ('{"text": "x", "labels": []}\nnot json\n', "line 2: not valid JSON"),
    ],
)
def test_errors_name_the_file_and_what_to_do(tmp_path, content, pattern):
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=pattern) as error:
        load_labeled(path, LABELS)
    assert "bad.jsonl" in str(error.value)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_labeled(tmp_path / "none.jsonl", LABELS)
    other = tmp_path / "a.txt"
    other.write_text("x")
    with pytest.raises(DataError, match=r"unsupported file type '.txt'"):
        load_labeled(other, LABELS)


def test_combine_dedupes_by_normalised_text(tmp_path):
    a = load_labeled(write_jsonl(tmp_path / "a.jsonl", [{"text": "Rude  Staff", "labels": []}]),
                     LABELS)
    b = load_labeled(write_jsonl(tmp_path / "b.jsonl", [{"text": "rude staff", "labels": []},
                                                         {"text": "ok", "labels": []}]), LABELS)
    assert combine([a, b], LABELS).texts == ["Rude  Staff", "ok"]
    assert len(combine([a, b], LABELS, dedupe=False)) == 3

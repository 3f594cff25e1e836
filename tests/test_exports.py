"""The CSV formula guard and its inverse."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from wordofclick.exports import (
    FORMULA_PREFIXES,
    csv_safe,
    csv_safe_table,
    csv_unsafe,
    csv_unsafe_sql,
    csv_unsafe_table,
)

VALUES = ["+Plus Mobile", "=1+1", "-3 stars", "@home", "\tTab", "\rCR", "'Tis Co", "'", "''=x",
          "plain", "", "Ünïcode", "'Ü"]


@pytest.mark.parametrize("value", VALUES)
def test_csv_unsafe_undoes_csv_safe(value):
    if not value.startswith("'"):
        assert csv_unsafe(csv_safe(value)) == value


def test_csv_unsafe_strips_the_quote_only_before_a_formula_prefix():
    assert csv_unsafe("'+Plus Mobile") == "+Plus Mobile"
    assert [csv_unsafe("'" + prefix + "x") for prefix in FORMULA_PREFIXES] == [
        prefix + "x" for prefix in FORMULA_PREFIXES
    ]
    assert csv_unsafe("'Tis Co") == "'Tis Co"
    assert csv_unsafe("'") == "'"
    assert csv_unsafe("''=x") == "''=x"
    assert csv_unsafe("") == ""


def test_csv_unsafe_table_and_sql_agree_with_csv_unsafe():
    guarded = [csv_safe(value) for value in VALUES] + ["'Tis Co", "'", None]
    want = [None if value is None else csv_unsafe(value) for value in guarded]
    table = pa.table({"s": guarded, "n": list(range(len(guarded)))})
    out = csv_unsafe_table(table)
    assert out["s"].to_pylist() == want
    assert out["n"].to_pylist() == list(range(len(guarded)))
    con = duckdb.connect()
    con.register("t", pa.table({"s": guarded}))
    sql = con.sql(f"SELECT {csv_unsafe_sql('s')} AS s FROM t").to_arrow_table()
    assert sql["s"].to_pylist() == want


@pytest.mark.parametrize(
    "column",
    [
        pa.array(["+Plus Mobile", "ok", None, "=1"]).dictionary_encode(),
        pa.array(["+Plus Mobile", "ok", None, "=1"], type=pa.string_view()),
        pa.array(["+Plus Mobile", "ok", None, "=1"], type=pa.large_string()),
        pa.chunked_array([pa.array(["+Plus Mobile", "ok"]).dictionary_encode(),
                          pa.array([None, "=1"]).dictionary_encode()]),
    ],
    ids=["dictionary", "string_view", "large_string", "chunked_dictionary"],
)
def test_csv_safe_table_guards_every_kind_of_text_column(column):
    table = pa.table({"company": column, "n": [1, -2, 3, 4]})
    safe = csv_safe_table(table)
    assert safe["company"].to_pylist() == ["'+Plus Mobile", "ok", None, "'=1"]
    assert safe["n"].to_pylist() == [1, -2, 3, 4]
    assert csv_unsafe_table(safe)["company"].to_pylist() == ["+Plus Mobile", "ok", None, "=1"]

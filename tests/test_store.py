"""The DuckDB store: creation, migration from version 1, refusals, content comparison."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import date, datetime, timezone

import duckdb
import pytest

from wordofclick.errors import DataError
from wordofclick.store import (
    MIGRATIONS,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    TABLES,
    LockedError,
    Store,
    migrate,
    schema_version,
)

NOW = datetime(2026, 11, 20, 3, 0, tzinfo=timezone.utc)


def make_v1_store(path) -> None:
    """A store as version 1 wrote it, with one row in each table."""
    con = duckdb.connect(str(path))
    assert migrate(con, target=1) == [1]
    con.execute(
        "INSERT INTO runs (run_id, logical_date, status, started_at, finished_at, model_name, "
        "model_version, config_fingerprint, reviews_read, reviews_scored, reviews_rejected, "
        "companies_updated) VALUES ('old-run', DATE '2026-11-19', 'succeeded', ?, ?, 'tiny', "
        "'test', 'abc', 2, 2, 0, 1)",
        [NOW, NOW],
    )
    con.execute(
        "INSERT INTO predictions VALUES ('r1', 'Acme', 'rude staff', ?, 1, 'twitter', 3, 4, "
        "0.9, 0.1, 0.05, 0.2, true, false, false, false, 'tiny', 'test', 'hash', 'old-run', ?)",
        [NOW, NOW],
    )
    con.execute(
        "INSERT INTO rejects VALUES ('in.csv', 2, 3, NULL, 'missing text', 'text is empty', "
        "'r2,Acme,', 'old-run')"
    )
    con.execute(
        "INSERT INTO company_scores VALUES (DATE '2026-11-19', 'Acme', 1, 10.0, 1.0, 8.0, 2.0, "
        "0.8, 70.0, 40.0, 90.0, 1, NULL, NULL, false, 'old-run')"
    )
    con.close()


def test_fresh_store_is_built_by_replaying_every_migration(tmp_path):
    with Store.open(tmp_path / "woc.duckdb") as store:
        assert store.migrated == list(range(1, SCHEMA_VERSION + 1))
        assert schema_version(store.con) == SCHEMA_VERSION
        assert {name: t.num_rows for name, t in store.content().items()} == dict.fromkeys(
            TABLES, 0
        )
    with Store.open(tmp_path / "woc.duckdb") as again:
        assert again.migrated == []


def test_migration_from_version_1_keeps_every_row(tmp_path):
    path = tmp_path / "v1.duckdb"
    make_v1_store(path)
    with Store.open(path) as store:
        assert store.migrated == [2]
        assert schema_version(store.con) == 2
        prediction = store.table("predictions").to_pylist()
        assert len(prediction) == 1
        assert prediction[0]["text"] == "rude staff"
        assert prediction[0]["prob_service_complaint"] == pytest.approx(0.9)
        # Version 1 did not know where a row came from: the next read of it fills these in.
        assert prediction[0]["source"] is None and prediction[0]["row_hash"] is None
        run = store.table("runs").to_pylist()[0]
        assert run["run_id"] == "old-run" and run["engine"] == "local" and run["forced"] is False
        assert run["since"] is None and run["reviews_new"] is None
        score = store.table("company_scores").to_pylist()[0]
        assert score["index"] == 70.0 and score["model_versions"] is None
        assert store.table("rejects").num_rows == 1
        assert store.table("input_files").num_rows == 0


def test_failed_migration_leaves_the_old_version(tmp_path, monkeypatch):
    path = tmp_path / "v1.duckdb"
    make_v1_store(path)
    broken = dict(MIGRATIONS)
    broken[2] = broken[2].replace("UPDATE schema_version SET version = 2;",
                                  "SELECT no_such_column FROM runs;")
    monkeypatch.setattr("wordofclick.store.MIGRATIONS", broken)
    with pytest.raises(duckdb.Error):
        Store.open(path)
    monkeypatch.undo()
    con = duckdb.connect(str(path), read_only=True)
    assert schema_version(con) == 1
    columns = [r[0] for r in con.execute("DESCRIBE predictions").fetchall()]
    assert "source" not in columns  # the ALTERs before the failure were rolled back too
    con.close()


def test_newer_store_is_refused_with_the_versions(tmp_path):
    path = tmp_path / "future.duckdb"
    Store.open(path).close()
    con = duckdb.connect(str(path))
    con.execute("UPDATE schema_version SET version = 99")
    con.close()
    with pytest.raises(DataError, match=r"schema version is 99, newer than .* \(2\); upgrade"):
        Store.open(path)


def test_read_only_open_needs_an_existing_current_store(tmp_path):
    with pytest.raises(DataError, match="no store here; run `woc nightly`"):
        Store.open(tmp_path / "missing.duckdb", read_only=True)
    make_v1_store(tmp_path / "v1.duckdb")
    with pytest.raises(DataError, match=r"schema version is 1.*run `woc nightly` once"):
        Store.open(tmp_path / "v1.duckdb", read_only=True)


def test_a_store_open_in_another_process_is_reported_as_locked(tmp_path):
    path = tmp_path / "busy.duckdb"
    Store.open(path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, duckdb
            con = duckdb.connect({str(path)!r})
            print("open", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(LockedError, match="open in another process"):
            Store.open(path, read_only=True)
    finally:
        holder.communicate("")


def test_transaction_rolls_back_on_error(tmp_path):
    with Store.open(tmp_path / "woc.duckdb") as store:
        with pytest.raises(RuntimeError), store.transaction() as con:
            con.execute(
                "INSERT INTO runs (run_id, logical_date, status, started_at) "
                "VALUES ('x', DATE '2026-11-20', 'failed', ?)",
                [NOW],
            )
            raise RuntimeError("boom")
        assert store.table("runs").num_rows == 0


def test_content_leaves_out_run_ids_and_times(tmp_path):
    with Store.open(tmp_path / "woc.duckdb") as store:
        store.con.execute(
            "INSERT INTO runs (run_id, logical_date, status, started_at) VALUES (?, ?, ?, ?)",
            ["r1", date(2026, 11, 20), "succeeded", NOW],
        )
        runs = store.content()["runs"]
    assert not set(RUN_COLUMNS) & set(runs.column_names)
    assert runs.to_pylist()[0]["logical_date"] == date(2026, 11, 20)
    with pytest.raises(ValueError, match="unknown store table 'nope'"):
        Store.open(":memory:").table("nope")

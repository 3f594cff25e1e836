"""The nightly job's store: one embedded DuckDB file, versioned, migrated on open.

Tables (``docs`` in the README section "The nightly job"):

* ``runs``: one row per nightly run that committed (or failed cleanly): logical date, status,
  counts, model name and version, config fingerprint, start and end time.
* ``predictions``: one row per ``review_id``: the review columns, one probability and one flag
  per label, the model that scored it, a hash of its text (an edit changes it), a hash of its
  other columns, the file it came from, and when and by which run it was scored.
* ``rejects``: input rows that could not be used, with file, row, reason and raw content; a file
  read again replaces its rows here.
* ``company_scores``: the word-of-click score per company per logical date, with the model
  versions behind it and the full aggregate row as JSON (``details``).
* ``input_files``: which input files were read, so that an unchanged file is not read again.
* ``schema_version``: the layout version; :func:`migrate` brings an older file up to date.

A migration is one transaction: a store is either at the old version or the new one. A fresh
store is built by replaying every migration, so the upgrade path is the one always tested.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from wordofclick.errors import DataError, LockedError

SCHEMA_VERSION = 2

# Columns that say when or by which run something was written: they differ between two runs that
# produce the same data, so comparisons of store content leave them out.
RUN_COLUMNS = ("run_id", "started_at", "finished_at", "scored_at")

TABLES = ("runs", "predictions", "rejects", "company_scores", "input_files")


_V1 = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
INSERT INTO schema_version VALUES (1);
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    logical_date DATE NOT NULL,
    status VARCHAR NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    model_name VARCHAR,
    model_version VARCHAR,
    config_fingerprint VARCHAR,
    reviews_read BIGINT,
    reviews_scored BIGINT,
    reviews_rejected BIGINT,
    companies_updated BIGINT,
    message VARCHAR
);
CREATE TABLE predictions (
    review_id VARCHAR PRIMARY KEY,
    company VARCHAR NOT NULL,
    text VARCHAR NOT NULL,
    created_at TIMESTAMPTZ,
    rating TINYINT,
    channel VARCHAR,
    shares BIGINT,
    likes BIGINT,
    prob_service_complaint FLOAT,
    prob_product_complaint FLOAT,
    prob_service_praise FLOAT,
    prob_product_praise FLOAT,
    pred_service_complaint BOOLEAN,
    pred_product_complaint BOOLEAN,
    pred_service_praise BOOLEAN,
    pred_product_praise BOOLEAN,
    model_name VARCHAR NOT NULL,
    model_version VARCHAR NOT NULL,
    text_hash VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    scored_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE rejects (
    source VARCHAR NOT NULL,
    "row" BIGINT NOT NULL,
    line BIGINT,
    review_id VARCHAR,
    reason VARCHAR NOT NULL,
    detail VARCHAR NOT NULL,
    raw VARCHAR NOT NULL,
    run_id VARCHAR NOT NULL,
    PRIMARY KEY (source, "row")
);
CREATE TABLE company_scores (
    logical_date DATE NOT NULL,
    company VARCHAR NOT NULL,
    review_count BIGINT NOT NULL,
    negative_woc DOUBLE,
    positive_woc DOUBLE,
    negative_woc_service DOUBLE,
    negative_woc_product DOUBLE,
    service_share DOUBLE,
    "index" DOUBLE,
    index_lower DOUBLE,
    index_upper DOUBLE,
    "rank" BIGINT,
    previous_index DOUBLE,
    change DOUBLE,
    alert BOOLEAN,
    run_id VARCHAR NOT NULL,
    PRIMARY KEY (logical_date, company)
);
"""

# Version 2: a night reads only files it has not read (input_files); a prediction remembers the
# file it came from and a hash of its non-text columns, so that a changed like count updates the
# row without re-scoring and an older file read again cannot undo an edit; each company score
# names the model versions behind it; runs record the finer counts, --since, engine and window.
_V1_TO_V2 = """
ALTER TABLE runs ADD COLUMN since DATE;
ALTER TABLE runs ADD COLUMN engine VARCHAR DEFAULT 'local';
ALTER TABLE runs ADD COLUMN forced BOOLEAN DEFAULT false;
ALTER TABLE runs ADD COLUMN window_days DOUBLE;
ALTER TABLE runs ADD COLUMN files_read BIGINT;
ALTER TABLE runs ADD COLUMN files_skipped BIGINT;
ALTER TABLE runs ADD COLUMN reviews_new BIGINT;
ALTER TABLE runs ADD COLUMN reviews_edited BIGINT;
ALTER TABLE runs ADD COLUMN reviews_rescored BIGINT;
ALTER TABLE runs ADD COLUMN reviews_updated BIGINT;
ALTER TABLE runs ADD COLUMN reviews_unchanged BIGINT;
ALTER TABLE runs ADD COLUMN reviews_later BIGINT;
ALTER TABLE runs ADD COLUMN dates_scored BIGINT;
ALTER TABLE predictions ADD COLUMN source VARCHAR;
ALTER TABLE predictions ADD COLUMN row_hash VARCHAR;
ALTER TABLE company_scores ADD COLUMN model_versions VARCHAR;
ALTER TABLE company_scores ADD COLUMN details VARCHAR;
CREATE TABLE input_files (
    path VARCHAR PRIMARY KEY,
    size BIGINT NOT NULL,
    mtime_ns BIGINT NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL,
    read_through DATE NOT NULL,
    max_created_at TIMESTAMPTZ,
    run_id VARCHAR NOT NULL
);
UPDATE schema_version SET version = 2;
"""

# MIGRATIONS[n] takes a store from version n - 1 to n (0 is an empty file).
MIGRATIONS: dict[int, str] = {1: _V1, 2: _V1_TO_V2}


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The store's layout version; 0 for an empty database.

    >>> schema_version(duckdb.connect())
    0
    """
    (exists,) = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'schema_version'"
    ).fetchall()[0]
    if not exists:
        return 0
    (version,) = con.execute("SELECT max(version) FROM schema_version").fetchall()[0]
    return int(version) if version is not None else 0


def migrate(
    con: duckdb.DuckDBPyConnection, target: int = SCHEMA_VERSION, source: str = "store"
) -> list[int]:
    """Apply the migrations that take ``con``'s store to ``target``; return the versions applied.

    Each step runs in its own transaction. ``source`` names the file in errors.

    >>> con = duckdb.connect()
    >>> migrate(con)
    [1, 2]
    >>> Store(con, ":memory:", []).table("predictions").num_rows
    0
    """
    current = schema_version(con)
    if current > SCHEMA_VERSION:
        raise DataError(
            f"{source}: the store's schema version is {current}, newer than this wordofclick "
            f"understands ({SCHEMA_VERSION}); upgrade wordofclick to use it"
        )
    applied = []
    for version in range(current + 1, target + 1):
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(MIGRATIONS[version])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


class Store:
    """An open store at the current schema version.

    >>> with Store.open("data/woc.duckdb") as store:  # doctest: +SKIP
    ...     store.table("runs").num_rows
    3
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: str, migrated: list[int]) -> None:
        self.con = con
        self.path = path
        self.migrated = migrated  # versions applied when opening; empty when none was needed

    @classmethod
    def open(cls, path: str | Path, read_only: bool = False) -> Store:
        """Open (creating if needed, unless ``read_only``) and migrate the store at ``path``.

        ``":memory:"`` gives a throw-away store. A read-only store must already be current.
        """
        path = str(path)
        if path != ":memory:":
            if read_only and not Path(path).is_file():
                raise DataError(f"{path}: no store here; run `woc nightly` first to create it")
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as error:
            if "lock" in str(error).lower():
                raise LockedError(
                    f"{path}: the store is open in another process ({error}); wait for that "
                    "process (a nightly run?) to finish and try again"
                ) from None
            raise DataError(f"{path}: not a readable DuckDB store ({error})") from None
        except duckdb.Error as error:
            raise DataError(f"{path}: not a readable DuckDB store ({error})") from None
        # Stored timestamps are UTC; the session zone decides how they print and hash as text.
        con.execute("SET TimeZone = 'UTC'")
        try:
            if read_only:
                version = schema_version(con)
                if version != SCHEMA_VERSION:
                    raise DataError(
                        f"{path}: the store's schema version is {version}, this wordofclick "
                        f"reads {SCHEMA_VERSION}; run `woc nightly` once to migrate it"
                    )
                migrated: list[int] = []
            else:
                migrated = migrate(con, source=path)
        except BaseException:
            con.close()
            raise
        return cls(con, path, migrated)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN ... COMMIT around the block; ROLLBACK if it raises."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def table(self, name: str) -> pa.Table:
        """A whole table as Arrow (for small tables and tests)."""
        if name not in (*TABLES, "schema_version"):
            raise ValueError(f"unknown store table {name!r}: expected one of {', '.join(TABLES)}")
        return self.con.sql(f"SELECT * FROM {name}").to_arrow_table()

    def content(self) -> dict[str, pa.Table]:
        """Every table without its run ids and timestamps, rows in a fixed order.

        Two stores that went through the same nights hold equal content, however often a run
        was killed and restarted on the way.
        """
        content = {}
        for name in TABLES:
            listed = ", ".join(f'"{c}"' for c in self.columns(name) if c not in RUN_COLUMNS)
            query = f"SELECT {listed} FROM {name} ORDER BY ALL"
            content[name] = self.con.sql(query).to_arrow_table()
        return content

    def columns(self, name: str) -> list[str]:
        """Column names of a store table, in order."""
        rows = self.con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
            "ORDER BY column_index",
            [name],
        ).fetchall()
        return [row[0] for row in rows]

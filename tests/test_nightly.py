"""The nightly job on the tiny model: incremental, idempotent, edits, order, crashes, lock."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from wordofclick.cli import main
from wordofclick.errors import EXIT_LOCKED, EXIT_USAGE, ConfigError, DataError
from wordofclick.nightly import (
    CRASH_ENV,
    NightlySettings,
    RunLock,
    RunSummary,
    run_nightly,
)
from wordofclick.settings import build_settings
from wordofclick.store import LockedError, Store

D1, D2, D3 = date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20)
CHANNELS = ("twitter", "facebook", "review_site", "other")
RESULT_TABLES = ("predictions", "rejects", "company_scores")


def review(i: int, day: date, text: str | None = None, **changes) -> dict:
    row = {
        "review_id": f"r{i}",
        "company": f"Company {i % 3}",
        "text": text or f"review {i}: the staff was rude and the food was cold",
        "created_at": f"{day}T{8 + i % 12:02d}:30:00Z",
        "rating": 1 + i % 5,
        "channel": CHANNELS[i % 4],
        "shares": i,
        "likes": 2 * i,
    }
    return {**row, **changes}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def settings_for(inputs, store: Path, model: Path, **values) -> NightlySettings:
    defaults = {"report": None, "train_config": None, "num_threads": 1, "chunk_rows": 4}
    return NightlySettings(
        input=[str(p) for p in inputs], store=str(store), model=str(model), **{**defaults, **values}
    )


@pytest.fixture
def make(tmp_path, tiny_model_dir):
    def make(*inputs, store: str = "woc.duckdb", model: Path = tiny_model_dir,
             **values) -> NightlySettings:
        return settings_for(inputs, tmp_path / store, model, **values)

    return make


def run(settings: NightlySettings, day: date, **options) -> RunSummary:
    return run_nightly(settings, date=day, events=io.StringIO(), **options)


def content(settings: NightlySettings) -> dict:
    with Store.open(settings.store, read_only=True) as store:
        return store.content()


def table(settings: NightlySettings, query: str) -> list[dict]:
    with Store.open(settings.store, read_only=True) as store:
        return store.con.sql(query).to_arrow_table().to_pylist()


def test_second_night_reads_only_the_new_file(tmp_path, make):
    write_jsonl(tmp_path / "in" / "day1.jsonl", [review(i, D1) for i in range(6)])
    settings = make(tmp_path / "in")
    first = run(settings, D1)
    assert (first.status, first.files_read, first.reviews_read, first.reviews_new) == (
        "succeeded", 1, 6, 6)
    assert first.reviews_scored == 6 and first.dates_scored == (D1,)

    write_jsonl(tmp_path / "in" / "day2.jsonl", [review(i, D2) for i in range(6, 9)])
    second = run(settings, D2)
    assert (second.files_read, second.files_skipped, second.reviews_read) == (1, 1, 3)
    assert (second.reviews_new, second.reviews_unchanged, second.reviews_scored) == (3, 0, 3)
    assert second.companies_updated == 3

    rows = table(settings, "SELECT logical_date, sum(review_count) AS n FROM company_scores "
                           "GROUP BY ALL ORDER BY 1")
    assert rows == [{"logical_date": D1, "n": 6}, {"logical_date": D2, "n": 9}]
    assert table(settings, "SELECT count(*) AS n FROM predictions") == [{"n": 9}]
    runs = table(settings, "SELECT status, reviews_new FROM runs ORDER BY logical_date")
    assert runs == [{"status": "succeeded", "reviews_new": 6},
                    {"status": "succeeded", "reviews_new": 3}]


def test_reviews_dated_after_the_logical_date_wait_for_their_night(tmp_path, make):
    both = write_jsonl(tmp_path / "both.jsonl",
                       [review(i, D1) for i in range(4)] + [review(i, D2) for i in range(4, 7)])
    settings = make(both)
    first = run(settings, D1)
    assert (first.reviews_new, first.reviews_later) == (4, 3)
    second = run(settings, D2)  # the file still holds reviews it has not taken: read again
    assert (second.files_read, second.reviews_new, second.reviews_unchanged) == (1, 3, 4)
    third = run(settings, D3)  # now it has given everything
    assert (third.files_read, third.files_skipped, third.reviews_read) == (0, 1, 0)


def test_rerun_is_a_noop_and_force_recomputes_the_same_result(tmp_path, make):
    write_jsonl(tmp_path / "in" / "day1.jsonl", [review(i, D1) for i in range(6)])
    settings = make(tmp_path / "in")
    run(settings, D1)
    before = content(settings)

    again = run(settings, D1)
    assert again.status == "no-op" and again.reviews_read == 0
    assert content(settings) == before

    forced = run(settings, D1, force=True)
    assert (forced.status, forced.files_read, forced.reviews_rescored) == ("succeeded", 1, 6)
    after = content(settings)
    for name in (*RESULT_TABLES, "input_files"):
        assert after[name] == before[name], name
    assert after["runs"].num_rows == 2


def test_edited_review_is_rescored_and_replaced_never_counted_twice(tmp_path, make):
    day1 = write_jsonl(tmp_path / "in" / "day1.jsonl", [review(i, D1) for i in range(6)])
    settings = make(tmp_path / "in")
    run(settings, D1)
    before = {r["review_id"]: r for r in table(settings, "SELECT * FROM predictions")}

    write_jsonl(tmp_path / "in" / "day2.jsonl", [
        review(1, D1, text="the manager hung up on me, never again"),  # edited text
        review(2, D1, likes=999),  # same text, more likes
        review(9, D2),
    ])
    second = run(settings, D2)
    assert (second.reviews_edited, second.reviews_updated, second.reviews_new) == (1, 1, 1)
    assert second.reviews_scored == 2
    after = {r["review_id"]: r for r in table(settings, "SELECT * FROM predictions")}
    assert len(after) == 7
    assert after["r1"]["text"] == "the manager hung up on me, never again"
    assert after["r1"]["text_hash"] != before["r1"]["text_hash"]
    assert after["r1"]["run_id"] != before["r1"]["run_id"]
    assert after["r2"]["likes"] == 999
    assert after["r2"]["prob_service_complaint"] == before["r2"]["prob_service_complaint"]
    assert after["r2"]["run_id"] == before["r2"]["run_id"]  # updated, not re-scored
    counts = table(settings, "SELECT sum(review_count) AS n FROM company_scores "
                             f"WHERE logical_date = DATE '{D2}'")
    assert counts == [{"n": 7}]

    # The older file read again (touched) cannot undo the edit or the new like count.
    stat = day1.stat()
    os.utime(day1, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = run(settings, D3)
    assert (third.files_read, third.reviews_unchanged, third.reviews_scored) == (1, 6, 0)
    final = {r["review_id"]: r for r in table(settings, "SELECT * FROM predictions")}
    assert final["r1"]["text"] == after["r1"]["text"] and final["r2"]["likes"] == 999


def test_out_of_order_dates_give_the_same_store(tmp_path, make):
    rows = [review(i, D1) for i in range(7)] + [{"review_id": "bad", "company": "X"}]
    write_jsonl(tmp_path / "in" / "day1.jsonl", rows)
    write_jsonl(tmp_path / "in" / "day2.jsonl", [review(i, D2) for i in range(7, 12)])
    in_order = make(tmp_path / "in", store="a.duckdb")
    run(in_order, D1)
    run(in_order, D2)
    reversed_ = make(tmp_path / "in", store="b.duckdb")
    run(reversed_, D2)
    assert run(reversed_, D1).reviews_scored == 0
    a, b = content(in_order), content(reversed_)
    for name in RESULT_TABLES:
        assert a[name] == b[name], name
    assert a["rejects"].num_rows == 1
    assert a["company_scores"].num_rows == 6


def test_since_rescores_what_another_model_scored(tmp_path, make, tiny_model_dir):
    write_jsonl(tmp_path / "in" / "day1.jsonl", [review(i, D1) for i in range(5)])
    write_jsonl(tmp_path / "in" / "day2.jsonl", [review(i, D2) for i in range(5, 8)])
    old = make(tmp_path / "in")
    run(old, D1)
    run(old, D2)

    retrained = tmp_path / "model-2"
    shutil.copytree(tiny_model_dir, retrained)
    meta = json.loads((retrained / "wordofclick.json").read_text())
    (retrained / "wordofclick.json").write_text(json.dumps({**meta, "version": "test-2"}))
    new = make(tmp_path / "in", model=str(retrained))

    assert run(new, D2).status == "no-op"  # a plain rerun keeps the date as it was
    backfill = run(new, D2, since=D1)
    assert backfill.dates_scored == (D1, D2)
    assert (backfill.reviews_read, backfill.reviews_rescored) == (0, 8)
    versions = table(new, "SELECT DISTINCT model_version FROM predictions")
    assert versions == [{"model_version": "test-2"}]
    scores = table(new, "SELECT DISTINCT logical_date, model_versions FROM company_scores "
                        "ORDER BY 1")
    assert scores == [{"logical_date": D1, "model_versions": "tiny:test-2"},
                      {"logical_date": D2, "model_versions": "tiny:test-2"}]
    # Nothing left to re-score: --since still recomputes every date, to the same scores.
    before = content(new)
    again = run(new, D2, since=D1)
    assert (again.status, again.dates_scored, again.reviews_scored) == ("succeeded", (D1, D2), 0)
    after = content(new)
    for name in RESULT_TABLES:
        assert after[name] == before[name], name

    with pytest.raises(ConfigError, match="--since 2026-11-20 is after the logical date"):
        run(new, D2, since=D3)


def test_since_recomputes_every_date_after_a_late_review(tmp_path, make):
    write_jsonl(tmp_path / "in" / "day1.jsonl", [review(i, D1) for i in range(4)])
    write_jsonl(tmp_path / "in" / "day2.jsonl", [review(i, D2) for i in range(4, 7)])
    write_jsonl(tmp_path / "in" / "day3.jsonl", [review(i, D3) for i in range(7, 9)])
    settings = make(tmp_path / "in")
    for day in (D1, D2, D3):
        run(settings, day)
    query = ("SELECT logical_date, sum(review_count) AS n FROM company_scores "
             "GROUP BY ALL ORDER BY 1")
    assert table(settings, query) == [{"logical_date": D1, "n": 4}, {"logical_date": D2, "n": 7},
                                      {"logical_date": D3, "n": 9}]

    # A review of D1 arrives after D3 ran: same model and config, yet D1..D3 must change.
    write_jsonl(tmp_path / "in" / "late.jsonl", [review(20, D1)])
    backfill = run(settings, D3, since=D1)
    assert backfill.status == "succeeded" and backfill.dates_scored == (D1, D2, D3)
    assert (backfill.files_read, backfill.files_skipped, backfill.reviews_new) == (1, 3, 1)
    assert backfill.reviews_rescored == 0  # the stored reviews' model did not change
    assert table(settings, query) == [{"logical_date": D1, "n": 5}, {"logical_date": D2, "n": 8},
                                      {"logical_date": D3, "n": 10}]
    assert table(settings, "SELECT count(*) AS n FROM predictions") == [{"n": 10}]


def test_dry_run_writes_nothing(tmp_path, make):
    write_jsonl(tmp_path / "in" / "day1.jsonl", [review(i, D1) for i in range(6)])
    settings = make(tmp_path / "in", store="data/woc.duckdb")
    dry = run(settings, D1, dry_run=True)
    assert (dry.status, dry.reviews_new, dry.dates_scored) == ("dry-run", 6, (D1,))
    assert not (tmp_path / "data").exists()  # no store, lock file, work area or folder
    assert "would score 6 review(s)" in "\n".join(dry.lines())

    run(settings, D1)
    before = content(settings)
    write_jsonl(tmp_path / "in" / "day2.jsonl", [review(i, D2) for i in range(6, 8)])
    dry = run(settings, D2, dry_run=True)
    assert (dry.files_read, dry.files_skipped, dry.reviews_new) == (1, 1, 2)
    assert content(settings) == before
    assert not settings.work_path.exists()
    assert settings.lock_path.read_text() == ""  # the lock a run made is taken and released
    with RunLock(settings.lock_path, run_id="the-holder"), pytest.raises(LockedError):
        run(settings, D2, dry_run=True)  # never reads a store that a run is changing


def test_rejects_are_kept_with_reasons_and_replaced_when_the_file_changes(tmp_path, make):
    path = tmp_path / "in.csv"
    path.write_text(
        "review_id,company,text,created_at\n"
        "a,Acme,rude staff,2026-11-18\n"
        "b,Acme,,2026-11-18\n"
        "c,Acme,slow reply,yesterday\n",
        encoding="utf-8",
    )
    settings = make(path)
    first = run(settings, D1)
    assert (first.reviews_read, first.reviews_rejected, first.reviews_new) == (3, 2, 1)
    rejects = table(settings, 'SELECT "row", reason FROM rejects ORDER BY "row"')
    assert rejects == [{"row": 2, "reason": "missing text"},
                       {"row": 3, "reason": "invalid created_at"}]

    path.write_text(
        "review_id,company,text,created_at\n"
        "a,Acme,rude staff,2026-11-18\n"
        "b,Acme,never answered the phone,2026-11-18\n"
        "c,Acme,slow reply,2026-11-18\n",
        encoding="utf-8",
    )
    second = run(settings, D2)
    assert (second.reviews_rejected, second.reviews_new, second.reviews_unchanged) == (0, 2, 1)
    assert table(settings, "SELECT count(*) AS n FROM rejects") == [{"n": 0}]


def test_unknown_channel_stops_before_scoring_and_is_recorded(tmp_path, make):
    path = write_jsonl(tmp_path / "in.jsonl", [review(0, D1), review(1, D1, channel="tiktok")])
    settings = make(path)
    with pytest.raises(DataError, match=r"in\.jsonl: review 'r1' has channel 'tiktok'.*"
                                        "unknown_channel: other"):
        run(settings, D1)
    assert table(settings, "SELECT count(*) AS n FROM predictions") == [{"n": 0}]
    failed = table(settings, "SELECT status, message FROM runs")
    assert failed[0]["status"] == "failed" and "tiktok" in failed[0]["message"]

    config = tmp_path / "aggregate.yaml"
    config.write_text("unknown_channel: other\n", encoding="utf-8")
    tolerant = make(path, aggregate_config=str(config))
    assert run(tolerant, D1).reviews_new == 2


def test_json_events_one_per_line_with_run_id_and_date(tmp_path, make):
    write_jsonl(tmp_path / "in.jsonl", [review(i, D1) for i in range(3)])
    events = io.StringIO()
    summary = run_nightly(make(tmp_path / "in.jsonl"), date=D1, events=events)
    records = [json.loads(line) for line in events.getvalue().splitlines()]
    names = [r["event"] for r in records]
    for expected in ("started", "store_created", "planned", "scored", "committed", "finished"):
        assert expected in names
    assert {r["run_id"] for r in records} == {summary.run_id}
    assert {r["date"] for r in records} == {str(D1)}
    assert records[-1]["reviews_scored"] == 3 and records[-1]["status"] == "succeeded"


def test_missing_model_is_trained_first_and_said_so(tmp_path, make, tiny_model_dir, monkeypatch):
    def fake_train(settings, progress=True):
        shutil.copytree(tiny_model_dir, settings.model_dir)
        report = SimpleNamespace(complaint_macro_f1=0.5)
        return SimpleNamespace(model_dir=settings.model_dir, dev_report=report, seconds=1.0)

    monkeypatch.setattr("wordofclick.train.train", fake_train)
    write_jsonl(tmp_path / "in.jsonl", [review(0, D1)])
    settings = make(tmp_path / "in.jsonl", model=str(tmp_path / "models" / "default"))
    events = io.StringIO()
    summary = run_nightly(settings, date=D1, events=events)
    assert summary.trained_model and summary.reviews_scored == 1
    training = [json.loads(line) for line in events.getvalue().splitlines()
                if '"training"' in line]
    assert "not found: training the default model" in training[0]["message"]


def cli_args(settings: NightlySettings, day: date) -> list[str]:
    args = ["nightly", "--store", settings.store, "--model", settings.model,
            "--date", str(day), "train_config=null", "num_threads=1", "chunk_rows=4"]
    for item in settings.input:
        args += ["--input", item]
    args += ["--report", settings.report] if settings.report else ["report=null"]
    return args


def test_cli_runs_the_job_and_maps_errors_to_exit_codes(tmp_path, make):
    write_jsonl(tmp_path / "in.jsonl", [review(i, D1) for i in range(3)])
    settings = make(tmp_path / "in.jsonl", report=str(tmp_path / "report"))
    runner = CliRunner()
    result = runner.invoke(main, cli_args(settings, D1))
    assert result.exit_code == 0, result.output
    assert f"nightly {D1}: done" in result.stdout
    assert (tmp_path / "report" / "index.html").is_file()
    again = runner.invoke(main, cli_args(settings, D1))
    assert again.exit_code == 0 and "already done, nothing changed" in again.stdout

    typo = runner.invoke(main, [*cli_args(settings, D1), "chunk_row=4"])
    assert typo.exit_code == EXIT_USAGE and "unknown key 'chunk_row'" in typo.stderr
    bad_date = runner.invoke(main, [*cli_args(settings, D1), "--date", "18/11/2026"])
    assert bad_date.exit_code == EXIT_USAGE and "expected a date such as" in bad_date.stderr
    engine = runner.invoke(main, [*cli_args(settings, D1), "--engine", "spark"])
    assert engine.exit_code == EXIT_USAGE and "unknown engine 'spark'" in engine.stderr


def test_engine_options_are_checked_when_the_settings_are_built():
    pytest.importorskip("wordofclick.ray_engine")
    options = {"address": "auto", "actors": 2, "cpus_per_actor": 1.5}
    assert NightlySettings(engine_options=options).engine_options == options
    with pytest.raises(ConfigError, match=r"nightly\.yaml: .*unknown key 'actor'; expected one of: "
                                           r"actors, address, batch_size, cpus_per_actor"):
        build_settings(NightlySettings, {"engine_options": {"actor": 2}}, "nightly.yaml")
    with pytest.raises(ConfigError, match="'actors': Input should be greater than or equal to 1"):
        build_settings(NightlySettings, {"engine_options": {"actors": 0}}, "nightly.yaml")
    result = CliRunner().invoke(main, ["nightly", "engine_options.cpus_per_actor=-1"])
    assert result.exit_code == EXIT_USAGE
    assert "cpus_per_actor': Input should be greater than 0" in result.stderr


def test_second_run_exits_75_naming_the_lock_holder(tmp_path, make):
    write_jsonl(tmp_path / "in.jsonl", [review(0, D1)])
    settings = make(tmp_path / "in.jsonl")
    with RunLock(settings.lock_path, run_id="the-holder"):
        result = CliRunner().invoke(main, cli_args(settings, D1))
        with pytest.raises(LockedError):
            run(settings, D1)
    assert result.exit_code == EXIT_LOCKED
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in result.stderr
    assert "run the-holder" in result.stderr
    assert not Path(settings.store).exists()  # refused before touching anything
    assert run(settings, D1).status == "succeeded"  # released: the next run goes ahead


def test_lock_of_a_dead_process_is_taken_over(tmp_path, make):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
    dead = int(finished.stdout)
    write_jsonl(tmp_path / "in.jsonl", [review(0, D1)])
    settings = make(tmp_path / "in.jsonl")
    holder = {"pid": dead, "host": socket.gethostname(), "started_at": "2026-11-19T01:00:00+00:00",
              "run_id": "crashed"}
    settings.lock_path.write_text(json.dumps(holder))
    events = io.StringIO()
    assert run_nightly(settings, date=D1, events=events).status == "succeeded"
    taken = [json.loads(line) for line in events.getvalue().splitlines()
             if "stale_lock_taken_over" in line]
    assert taken[0]["previous_holder"]["pid"] == dead
    assert settings.lock_path.read_text() == ""  # released, not deleted


# --- killed and restarted ----------------------------------------------------------------------

CRASH_STAGES = ("reading", "planned", "scoring", "in_transaction", "committed")


@pytest.fixture(scope="module")
def crash_case(tmp_path_factory, tiny_model_dir):
    """Two nights: the store after the first, and the content after an uninterrupted second."""
    root = tmp_path_factory.mktemp("crash")
    day1 = write_jsonl(root / "in" / "day1.jsonl",
                       [review(i, D1) for i in range(8)] + [{"review_id": "x", "company": "Y"}])
    day2 = write_jsonl(root / "in" / "day2.jsonl", [
        review(1, D1, text="the agent was rude and hung up"),
        review(2, D1, likes=500),
        *[review(i, D2) for i in range(10, 20)],
    ])
    first_night = settings_for([day1], root / "night1.duckdb", tiny_model_dir)
    run(first_night, D1)
    reference = settings_for([day1, day2], root / "reference.duckdb", tiny_model_dir)
    shutil.copy(first_night.store, reference.store)
    summary = run(reference, D2)
    assert (summary.reviews_edited, summary.reviews_updated, summary.reviews_new) == (1, 1, 10)
    return SimpleNamespace(inputs=[day1, day2], night1=Path(first_night.store),
                           expected=content(reference))


@pytest.mark.parametrize("stage", CRASH_STAGES)
def test_killed_run_restarts_into_the_same_store(stage, crash_case, tmp_path, tiny_model_dir):
    store = tmp_path / "woc.duckdb"
    shutil.copy(crash_case.night1, store)
    settings = settings_for(crash_case.inputs, store, tiny_model_dir,
                            report=str(tmp_path / "report"))
    killed = subprocess.run(
        [sys.executable, "-c", "from wordofclick.cli import main; main()",
         *cli_args(settings, D2)],
        env={**os.environ, CRASH_ENV: stage, "HF_HUB_OFFLINE": "1"},
        capture_output=True, text=True, timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    restart = run(settings, D2)
    assert content(settings) == crash_case.expected
    assert restart.status == ("no-op" if stage == "committed" else "succeeded")
    assert (tmp_path / "report" / "index.html").is_file()
    assert not settings.work_path.exists()
    assert pc.sum(content(settings)["company_scores"]["review_count"]).as_py() == 8 + 18

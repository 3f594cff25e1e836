"""The Ray engine against the local one on the tiny model, on one local Ray of 2 CPUs."""

from __future__ import annotations

import gzip
import io
import json
import logging
import sys
from datetime import date

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from wordofclick import ray_engine
from wordofclick.cli import main
from wordofclick.errors import DataError
from wordofclick.ray_engine import ActorPlan, RayEngineError, RaySettings, plan_actors
from wordofclick.scoring import ReviewScorer, score_file

from .test_reviews import BROKEN_CSV, sample_reviews, write_csv

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    """One local Ray for the module; the engine uses a session that is open and leaves it open."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_scorer(tiny_model_dir):
    import torch

    threads = torch.get_num_threads()
    # One thread, as in each default Ray actor (1 CPU): the same arithmetic, the same bits.
    yield ReviewScorer(tiny_model_dir, backend="torch", num_threads=1)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two files with bad rows and duplicate ids within and across files."""
    folder = tmp_path_factory.mktemp("ray-in")
    rows = sample_reviews(60)
    pq.write_table(pa.Table.from_pylist(rows[40:] + rows[:2]), folder / "b.parquet")
    (folder / "broken.csv").write_bytes(BROKEN_CSV)
    return [write_csv(folder / "a.csv", rows[:45] + rows[3:5]), folder / "broken.csv",
            folder / "b.parquet"]


def summary_facts(summary) -> tuple:
    return (summary.read, summary.scored, summary.rejected, summary.duplicates,
            summary.truncated, summary.rejected_by_reason)


def test_same_rows_rejects_and_counts_as_the_local_engine(tmp_path, local_scorer, inputs,
                                                          tiny_model_dir):
    local = score_file(local_scorer, inputs, tmp_path / "local.parquet",
                       rejects=tmp_path / "local-rejects.csv", chunk_rows=16, progress=False)
    # Default settings on 2 CPUs: every CPU goes to an actor; the read side needs none.
    remote = ray_engine.score_file(tiny_model_dir, inputs, tmp_path / "ray.parquet",
                                   rejects=tmp_path / "ray-rejects.csv", chunk_rows=16,
                                   backend="torch", progress=False)
    assert summary_facts(remote) == summary_facts(local)
    assert (local.read, local.scored, local.duplicates) == (83, 64, 10)
    assert "2 actors x 1 CPU, 1 thread each" in remote.backend
    assert pq.read_table(tmp_path / "ray.parquet").equals(pq.read_table(tmp_path / "local.parquet"))
    local_rejects = (tmp_path / "local-rejects.csv").read_bytes()
    assert (tmp_path / "ray-rejects.csv").read_bytes() == local_rejects
    assert local_rejects.count(b"duplicate review_id") == 10


def test_cli_engine_ray_with_a_fractional_actor_and_csv_output(tmp_path, local_scorer, inputs,
                                                              tiny_model_dir):
    score_file(local_scorer, inputs, tmp_path / "local.csv", chunk_rows=7, progress=False)
    args = ["score", "--model", str(tiny_model_dir), "--quiet", "--backend", "torch",
            "--output", str(tmp_path / "ray.csv")]
    args += [arg for path in inputs for arg in ("--input", str(path))]
    options = ["--engine", "ray", "--ray-actors", "1", "--ray-cpus-per-actor", "0.5",
               "--ray-batch-size", "7"]
    result = CliRunner().invoke(main, args + options)
    assert result.exit_code == 0, result.output
    assert "read 83 rows: scored 64, rejected 19 (duplicate review_id 10," in result.output
    assert "torch on Ray (1 actor x 0.5 CPUs, 1 thread each)" in result.output
    assert (tmp_path / "ray.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


def test_failure_inside_ray_is_the_library_error_and_leaves_no_file(tmp_path, tiny_model_dir,
                                                                    monkeypatch):
    whole = gzip.compress(b"review_id,company,text\n" + b"r1,Acme,slow service\n" * 4000)
    broken = tmp_path / "cut.csv.gz"
    broken.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut\.csv\.gz: cannot read the file"):  # on the driver
        ray_engine.score_file(tiny_model_dir, broken, tmp_path / "out.parquet", progress=False)
    # Past the driver's checks, the chunk source meets the cut while scoring is under way.
    monkeypatch.setattr(ray_engine, "estimate_rows", lambda files: 4000)
    with pytest.raises(DataError, match=r"cut\.csv\.gz: cannot read past row \d+") as raised:
        ray_engine.score_file(tiny_model_dir, broken, tmp_path / "out.parquet",
                              rejects=tmp_path / "rejects.csv", chunk_rows=500, backend="torch",
                              progress=False, ray=RaySettings(actors=1))
    assert "Traceback" not in str(raised.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.csv.gz"]


def test_errors_are_one_line_with_exit_2(tmp_path, tiny_model_dir, inputs, monkeypatch):
    base = ["score", "--model", str(tiny_model_dir), "--input", str(inputs[0]), "--quiet",
            "--output", str(tmp_path / "out.parquet")]
    runner = CliRunner()

    def error_of(*extra: str, one_line: bool = True) -> str:
        result = runner.invoke(main, [*base, *extra])
        assert result.exit_code == 2, result.output
        if one_line:  # click's own usage errors add the usage line and a hint
            assert len(result.output.strip().splitlines()) == 1, result.output
        return result.output

    assert "need 3 CPUs but the Ray cluster has 2" in error_of(
        "--engine", "ray", "--ray-actors", "3", "--ray-cpus-per-actor", "1")
    assert "--ray-* options need --engine ray" in error_of("--ray-actors", "2", one_line=False)
    assert "--ray-cpus-per-actor" in error_of("--engine", "ray", "--threads", "2", one_line=False)
    with monkeypatch.context() as patch:
        patch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process
        assert "cannot reach the Ray cluster at '127.0.0.1:1'" in error_of(
            "--engine", "ray", "--ray-address", "127.0.0.1:1")
        assert "not auto, host:port or ray://host:port" in error_of(
            "--engine", "ray", "--ray-address", "head-without-port")
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
        assert "pip install 'wordofclick[ray]'" in error_of("--engine", "ray")
    assert not (tmp_path / "out.parquet").exists()


@pytest.mark.parametrize(
    ("settings", "free", "expected"),
    [
        (RaySettings(), 2, ActorPlan(2, 1.0, 1)),
        (RaySettings(), 0.5, ActorPlan(1, 0.5, 1)),  # a node smaller than one CPU
        (RaySettings(cpus_per_actor=2), 16, ActorPlan(8, 2, 2)),
        (RaySettings(cpus_per_actor=0.5), 2, ActorPlan(4, 0.5, 1)),
        (RaySettings(actors=3), 2, ActorPlan(3, 0.66, 1)),
        (RaySettings(actors=1), 6, ActorPlan(1, 6.0, 6)),
        (RaySettings(actors=4, cpus_per_actor=1.5), 6, ActorPlan(4, 1.5, 1)),
    ],
)
def test_plan_actors_fits_the_free_cpus(settings, free, expected):
    assert plan_actors(settings, free) == expected


def test_plan_actors_refuses_what_could_never_be_scheduled():
    with pytest.raises(RayEngineError, match="largest Ray node has"):
        plan_actors(RaySettings(cpus_per_actor=8), 16, 16, largest_node_cpus=4)
    with pytest.raises(RayEngineError, match="need 6 CPUs but the Ray cluster has 4"):
        plan_actors(RaySettings(actors=3, cpus_per_actor=2), 4)
    with pytest.raises(ValueError, match="greater than 0"):
        RaySettings(cpus_per_actor=0)


def test_nightly_with_engine_ray_gives_the_same_store(tmp_path, tiny_model_dir):
    nightly = pytest.importorskip("wordofclick.nightly")
    if "ray" not in nightly.ENGINES:
        pytest.skip("the nightly job has no ray engine yet")
    from wordofclick.store import Store

    day = date(2026, 11, 18)
    rows = [{"review_id": f"r{i}", "company": f"Company {i % 3}",
             "text": f"review {i}: the staff was rude and the pasta was cold",
             "created_at": f"{day}T10:00:00Z", "channel": "twitter", "shares": i}
            for i in range(10)]
    rows.append({"review_id": "bad", "company": "X"})  # a reject
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    contents = {}
    for engine in ("local", "ray"):
        settings = nightly.NightlySettings(
            input=[str(tmp_path / "in.jsonl")], store=str(tmp_path / f"{engine}.duckdb"),
            model=str(tiny_model_dir), report=None, train_config=None, num_threads=1,
            chunk_rows=4, engine_options={"actors": 1, "cpus_per_actor": 1})
        summary = nightly.run_nightly(settings, date=day, engine=engine, events=io.StringIO())
        assert (summary.status, summary.reviews_scored) == ("succeeded", 10)
        with Store.open(settings.store, read_only=True) as store:
            contents[engine] = store.content()
    for name in ("predictions", "rejects", "company_scores"):
        assert contents["ray"][name].equals(contents["local"][name]), name
    assert contents["ray"]["rejects"].num_rows == 1

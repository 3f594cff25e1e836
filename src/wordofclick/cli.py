"""The ``woc`` command line. Each command parses options and calls one library function."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from wordofclick.errors import (
    ConfigError,
    DataError,
    LockedError,
    ModelFolderError,
    exit_code_for,
)

USER_ERRORS = (ConfigError, DataError, LockedError, ModelFolderError, FileNotFoundError)


class WocGroup(click.Group):
    """Turns the library's user-facing errors into one line on stderr and a documented exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except USER_ERRORS as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(exit_code_for(error))


@click.group(cls=WocGroup)
@click.version_option(package_name="wordofclick")
@click.option("-v", "--verbose", is_flag=True, help="Log debug details to stderr.")
def main(verbose: bool) -> None:
    """wordofclick: find which reviews complain about service attitude, and how loud they are."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        quiet_transformers()


def quiet_transformers() -> None:
    """Hide transformers' per-load reports and progress bars; ours say what matters."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


overrides_argument = click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
existing_path = click.Path(exists=True, path_type=Path)


@main.command("import-absa")
@click.argument("xml_files", nargs=-1, required=True, type=existing_path)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="JSONL file to write.")
@click.option("--reviews", is_flag=True, help="SemEval-2016: one example per review, not sentence.")
@click.option("--no-dedupe", is_flag=True, help="Keep texts that repeat across files.")
def import_absa_command(xml_files: tuple[Path, ...], out: Path, reviews: bool,
                        no_dedupe: bool) -> None:
    """Convert SemEval-2014/2016 or MAMS XML into labeled JSONL (see the annotation guide)."""
    from wordofclick.absa import import_absa

    summary = import_absa(xml_files, out, by_review=reviews, dedupe=not no_dedupe)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.label_counts.items()))
    click.echo(
        f"{out}: {summary.written} examples from {summary.files} file(s) "
        f"({summary.read} read, {summary.duplicates} repeated texts skipped); {counts}"
    )


@main.command("train")
@click.option("--config", "config_path", type=existing_path, default=None,
              help="YAML training config (default: built-in defaults).")
@overrides_argument
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_command(config_path: Path | None, overrides: tuple[str, ...], quiet: bool) -> None:
    """Fine-tune the classifier; writes models/<name>/. Override any key: woc train epochs=1."""
    from wordofclick.settings import load_settings
    from wordofclick.train import TrainSettings, train

    settings = load_settings(TrainSettings, config_path, overrides)
    result = train(settings, progress=not quiet)
    report = result.dev_report
    click.echo(
        f"saved {result.model_dir} (best epoch {result.best_epoch} of {result.epochs_run}, "
        f"{result.seconds:.0f} s, {result.examples_per_second:.1f} examples/s); "
        f"dev complaint macro-F1 {report.complaint_macro_f1:.3f}, micro-F1 {report.micro_f1:.3f}"
    )


@main.command("evaluate")
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path))
@click.option("--data", required=True,
              help="Labeled file (JSONL/CSV/Parquet/XML) or corpus:<split>.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for evaluation.json and reliability.png (default: <model>/eval).")
@click.option("--reviews", is_flag=True, help="SemEval-2016 XML: evaluate per review.")
@click.option("--backend", default="torch", show_default=True,
              type=click.Choice(["torch", "onnx", "onnx-int8", "auto"]))
@click.option("--behaviour", is_flag=True,
              help="Also run the packaged behavioural test set and report its pass rates.")
@click.option("--baseline", "baseline_dir", type=click.Path(path_type=Path), default=None,
              help="Another model folder evaluated on the same data, reported beside this one.")
@click.option("--record", is_flag=True,
              help="Keep the report in the model's wordofclick.json and model card.")
def evaluate_command(model_dir: Path, data: str, out: Path | None, reviews: bool,
                     backend: str, behaviour: bool, baseline_dir: Path | None,
                     record: bool) -> None:
    """Per-label precision, recall, F1 and calibration on labeled data; table + JSON report."""
    from wordofclick.evaluate import evaluate_model, print_report, record_evaluation

    out = out or model_dir / "eval"
    granularity = "review" if reviews else "sentence"
    report = evaluate_model(model_dir, data, out=out, backend=backend,
                            granularity=granularity, behaviour=behaviour)
    print_report(report)
    click.echo(f"report: {out / 'evaluation.json'}")
    baseline = None
    if baseline_dir is not None:
        baseline = evaluate_model(baseline_dir, data, out=out / "baseline", backend=backend,
                                  granularity=granularity)
        print_report(baseline)
        click.echo(f"baseline report: {out / 'baseline' / 'evaluation.json'}")
    if record:
        click.echo(f"recorded in {record_evaluation(model_dir, report, baseline)}")


@main.command("aggregate")
@click.option("--scores", required=True,
              help="Scored reviews (woc score output): a Parquet, CSV or JSONL file or a glob.")
@click.option("--as-of", "as_of", required=True,
              help="End of the window, UTC: a date (that day included) or an ISO date-time.")
@click.option("--window", default=None,
              help="Window length such as 90d or 12w (default: the config's window, 90d).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output file: .csv (formula-safe), .parquet, .json or .jsonl.")
@click.option("--config", "config_path", type=existing_path, default=None,
              help="YAML settings, e.g. configs/aggregate.yaml (default: built-in defaults).")
@overrides_argument
def aggregate_command(scores: str, as_of: str, window: str | None, out: Path,
                      config_path: Path | None, overrides: tuple[str, ...]) -> None:
    """Per-company negative word-of-click index with interval, rank and trend.

    See docs/word_of_click.md. Override any setting: woc aggregate ... service_weight=2
    """
    from wordofclick.aggregate import AggregateSettings, aggregate_file, as_of_instant, parse_window
    from wordofclick.settings import load_settings

    checks = (("--as-of", as_of_instant, as_of), ("--window", parse_window, window))
    for hint, parse, value in checks:
        try:
            if value is not None:
                parse(value)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint=hint) from None
    settings = load_settings(AggregateSettings, config_path, overrides)
    table = aggregate_file(scores, out, as_of=as_of, settings=settings, window=window)
    alerts = sum(table["alert"].to_pylist())
    click.echo(f"{out}: {table.num_rows} companies ranked, {alerts} alert(s)")


@main.command("score")
@click.option("--model", "model_dir", required=True, type=click.Path(path_type=Path),
              help="Saved model folder, e.g. models/default.")
@click.option("--input", "inputs", required=True, multiple=True,
              help="CSV, JSONL or Parquet file, folder or glob ('exports/*.csv'); repeatable.")
@click.option("--output", required=True, type=click.Path(path_type=Path),
              help="Scored reviews: .parquet, .csv (formula-safe) or .jsonl.")
@click.option("--rejects", type=click.Path(path_type=Path), default=None,
              help="Where rejected rows go, with file, line, reason and raw content.")
@click.option("--columns", default=None,
              help="Map review columns to input columns: text=review_body,company=business_id.")
@click.option("--backend", default="auto", show_default=True,
              type=click.Choice(["auto", "torch", "onnx", "onnx-int8"]),
              help="auto: the fastest one in the model folder (see woc export-onnx).")
@click.option("--chunk-rows", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Rows read, scored and written at a time; memory grows with it, not the input.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for the model (default: all this process may use).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="ray: score in Ray Data actors (pip install 'wordofclick[ray]'); same output.")
@click.option("--ray-address", default=None,
              help="auto, host:6379 or ray://host:10001 (default: start Ray on this machine).")
@click.option("--ray-actors", type=click.IntRange(min=1), default=None,
              help="Scoring actors (default: one per free CPU).")
@click.option("--ray-cpus-per-actor", type=click.FloatRange(min=0, min_open=True), default=None,
              help="CPUs per actor, also its model threads (default: 1, or the free CPUs shared).")
@click.option("--ray-batch-size", type=click.IntRange(min=1), default=None,
              help="Rows read per actor call (default: --chunk-rows).")
def score_command(model_dir: Path, inputs: tuple[str, ...], output: Path, rejects: Path | None,
                  columns: str | None, backend: str, chunk_rows: int, threads: int | None,
                  quiet: bool, engine: str, ray_address: str | None, ray_actors: int | None,
                  ray_cpus_per_actor: float | None, ray_batch_size: int | None) -> None:
    """Score review files: complaint probabilities and labels per review, rejects kept apart."""
    from wordofclick.scoring import score_file

    quiet_transformers()
    ray_options = {"address": ray_address, "actors": ray_actors,
                   "cpus_per_actor": ray_cpus_per_actor, "batch_size": ray_batch_size}
    if engine == "ray":
        from wordofclick import ray_engine

        if threads is not None:
            raise click.BadParameter("with --engine ray, set --ray-cpus-per-actor instead",
                                     param_hint="--threads")
        summary = ray_engine.score_file(
            model_dir, list(inputs), output, rejects=rejects, columns=columns,
            chunk_rows=chunk_rows, backend=backend, progress=not quiet,
            ray=ray_engine.RaySettings(**ray_options))
    elif any(value is not None for value in ray_options.values()):
        raise click.UsageError("the --ray-* options need --engine ray")
    else:
        summary = score_file(model_dir, list(inputs), output, rejects=rejects, columns=columns,
                             chunk_rows=chunk_rows, backend=backend, progress=not quiet,
                             num_threads=threads)
    for line in summary.lines():
        click.echo(line)


@main.command("export-onnx")
@click.option("--model", "model_dir", required=True, type=existing_path,
              help="Saved model folder; the files go to <model>/onnx/.")
@click.option("--quantize", type=click.Choice(["int8"]), default=None,
              help="Also write a dynamically quantized int8 model (fastest on CPUs with VNNI).")
@click.option("--min-agreement", type=click.FloatRange(0, 1), default=0.995, show_default=True,
              help="Share of check texts whose labels must match PyTorch, else no file is kept.")
def export_onnx_command(model_dir: Path, quantize: str | None, min_agreement: float) -> None:
    """Add ONNX Runtime variants of a model, checked against its PyTorch outputs."""
    from wordofclick.onnx_backend import export_onnx

    quiet_transformers()
    for check in export_onnx(model_dir, quantize=quantize, min_agreement=min_agreement):
        click.echo(check.summary())


@main.command("nightly")
@click.option("--config", "config_path", type=existing_path, default=None,
              help="YAML settings, e.g. configs/nightly.yaml (default: built-in defaults).")
@click.option("--date", "logical_date", default=None,
              help="Logical date YYYY-MM-DD, UTC (default: yesterday); Airflow: {{ ds }}.")
@click.option("--since", default=None,
              help="Also recompute every date from this one and re-score the reviews created "
                   "since then by another model (backfill, model change).")
@click.option("--force", is_flag=True,
              help="Redo a date that succeeded: read every file again, re-score what it holds.")
@click.option("--dry-run", is_flag=True,
              help="Say what would be read, scored and written; write nothing.")
@click.option("--input", "inputs", multiple=True,
              help="Review files, folder or glob (repeatable); replaces the config's input.")
@click.option("--store", default=None, help="DuckDB store file; replaces the config's.")
@click.option("--model", default=None, help="Model folder; replaces the config's.")
@click.option("--report", default=None, help="Report folder; replaces the config's.")
@click.option("--engine", default="local", show_default=True,
              help="Scoring engine (see wordofclick.nightly.ENGINES).")
@overrides_argument
def nightly_command(config_path: Path | None, logical_date: str | None, since: str | None,
                    force: bool, dry_run: bool, inputs: tuple[str, ...], store: str | None,
                    model: str | None, report: str | None, engine: str,
                    overrides: tuple[str, ...]) -> None:
    """Score the reviews that arrived, update the store in one transaction, write the report.

    Safe to rerun (a date that succeeded is a no-op) and to kill. JSON events go to stderr, a
    summary to stdout. Exit codes: 0 done or nothing to do, 1 failure, 2 usage or config error,
    75 another run holds the lock.
    """
    from wordofclick.nightly import NightlySettings, run_nightly, with_paths
    from wordofclick.settings import load_settings

    quiet_transformers()
    settings = with_paths(load_settings(NightlySettings, config_path, overrides),
                          input=list(inputs), store=store, model=model, report=report)
    summary = run_nightly(settings, date=logical_date, since=since, force=force,
                          dry_run=dry_run, engine=engine)
    for line in summary.lines():
        click.echo(line)


@main.command("report")
@click.option("--store", required=True, type=existing_path, help="The nightly job's store.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Folder for index.html and the PNG charts.")
@click.option("--top", type=click.IntRange(min=1), default=25, show_default=True,
              help="Companies listed and charted.")
def report_command(store: Path, out: Path, top: int) -> None:
    """Write the nightly report (HTML page and PNG charts) from a store, any time."""
    from wordofclick.report import build_report

    page = build_report(store, out, top=top)
    click.echo(f"report: {page}")

"""The ``woc`` command line. Each command parses options and calls one library function."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from wordofclick.errors import ConfigError, DataError, ModelFolderError, exit_code_for

USER_ERRORS = (ConfigError, DataError, ModelFolderError, FileNotFoundError)


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
    """Convert SemEval-2014/2016 or MAMS XML into labeled JSONL (see docs/labels.md)."""
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
@click.option("--data", required=True, help="Labeled file (JSONL/CSV/Parquet/XML) or corpus:<split>.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for evaluation.json and reliability.png (default: <model>/eval).")
@click.option("--reviews", is_flag=True, help="SemEval-2016 XML: evaluate per review.")
@click.option("--backend", default="torch", show_default=True,
              type=click.Choice(["torch", "onnx", "onnx-int8", "auto"]))
def evaluate_command(model_dir: Path, data: str, out: Path | None, reviews: bool,
                     backend: str) -> None:
    """Per-label precision, recall, F1 and calibration on labeled data; table + JSON report."""
    from wordofclick.evaluate import evaluate_model, print_report

    out = out or model_dir / "eval"
    report = evaluate_model(model_dir, data, out=out, backend=backend,
                            granularity="review" if reviews else "sentence")
    print_report(report)
    click.echo(f"report: {out / 'evaluation.json'}")

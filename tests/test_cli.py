"""The command line end to end: import-absa, train, evaluate, load in Python; user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tests.test_absa import SEMEVAL14, SEMEVAL16
from wordofclick.cli import main
from wordofclick.model import ComplaintClassifier


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_import_train_evaluate_load(runner, tiny_base_dir, tmp_path):
    (tmp_path / "se14.xml").write_text(SEMEVAL14, encoding="utf-8")
    (tmp_path / "se16.xml").write_text(SEMEVAL16, encoding="utf-8")
    train_file, dev_file = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    result = runner.invoke(main, ["import-absa", str(tmp_path / "se14.xml"),
                                  str(tmp_path / "se16.xml"), "--out", str(train_file)])
    assert result.exit_code == 0, result.output
    assert "10 examples from 2 file(s)" in result.output
    result = runner.invoke(main, ["import-absa", str(tmp_path / "se16.xml"), "--reviews",
                                  "--out", str(dev_file)])
    assert result.exit_code == 0, result.output

    config = tmp_path / "train.yaml"
    config.write_text(
        f"name: cli\nbase_model: {tiny_base_dir}\ntrain: [{train_file}]\ndev: [{dev_file}]\n"
        f"output_dir: {tmp_path / 'model'}\nmax_length: 32\nbatch_size: 4\n", encoding="utf-8"
    )
    result = runner.invoke(main, ["train", "--config", str(config), "--quiet", "epochs=1"])
    assert result.exit_code == 0, result.output
    assert "dev complaint macro-F1" in result.output

    result = runner.invoke(main, ["evaluate", "--model", str(tmp_path / "model"),
                                  "--data", str(train_file), "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    assert "complaint" in result.output and "service_complaint" in result.output
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["examples"] == 10
    assert set(report["per_label"]) == {"service_complaint", "product_complaint",
                                        "service_praise", "product_praise"}
    assert (tmp_path / "eval" / "reliability.png").is_file()

    classifier = ComplaintClassifier.from_pretrained(tmp_path / "model")
    predictions = classifier.predict(["the waiter was rude"])
    assert np.isclose(sum(predictions[0].probabilities.values()),
                      classifier.predict_proba(["the waiter was rude"]).sum())


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["train", "lerning_rate=0.1"], 2, "unknown key 'lerning_rate'"),
        (["train", "epochs=many"], 2, "field 'epochs'"),
        (["evaluate", "--model", "/nonexistent/model", "--data", "corpus:test"], 1,
         "model folder not found"),
        (["import-absa", "{missing}", "--out", "x.jsonl"], 2, "does not exist"),
        (["train", "train=corpus:tset"], 2, "unknown corpus split 'tset'"),
        (["evaluate", "--model", "{model}", "--data", "corpus:tst"], 1,
         "corpus:tst: unknown corpus split"),
    ],
)
def test_user_errors_are_one_line_with_exit_code(runner, tiny_model_dir, tmp_path, args, code,
                                                 message):
    args = [a.replace("{missing}", str(tmp_path / "missing.xml")).replace(
        "{model}", str(tiny_model_dir)) for a in args]
    result = runner.invoke(main, args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_data_file_exit_code(runner, tiny_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"review": "x"}\n', encoding="utf-8")
    result = runner.invoke(main, ["evaluate", "--model", str(tiny_model_dir), "--data", str(bad)])
    assert result.exit_code == 1
    assert "bad.jsonl: no 'text' column" in result.output

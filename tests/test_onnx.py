"""ONNX export, its check against PyTorch, and the ONNX Runtime backends, on the tiny model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from wordofclick import onnx_backend
from wordofclick.cli import main
from wordofclick.errors import ModelFolderError
from wordofclick.model import ComplaintClassifier
from wordofclick.onnx_backend import OnnxBackend, export_onnx, pick_auto, synthetic_texts
from wordofclick.scoring import ReviewScorer

TEXTS = synthetic_texts(200, seed=1)


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory, monkeypatch_module):
    """A private copy of the tiny model with both ONNX files (the shared folder stays read-only)."""
    folder = tmp_path_factory.mktemp("onnx") / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    assert pick_auto(folder) == "torch"
    monkeypatch_module.chdir(folder.parent)
    checks = export_onnx(folder, quantize="int8", check_texts=TEXTS)
    assert [c.backend for c in checks] == ["onnx", "onnx-int8"]
    # Export (and quantization) leave nothing in the working directory.
    assert sorted(p.name for p in folder.parent.iterdir()) == ["tiny"]
    return folder, checks


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_export_writes_checked_files(exported):
    folder, checks = exported
    assert sorted(p.name for p in (folder / "onnx").iterdir()) == [
        "export.json",
        "model-int8.onnx",
        "model.onnx",
    ]
    fp32, int8 = checks
    assert fp32.label_agreement == 1.0 and fp32.max_abs_prob_diff < 1e-5
    assert int8.label_agreement >= 0.995 and int8.max_abs_prob_diff < 0.01
    info = json.loads((folder / "onnx" / "export.json").read_text())
    assert info["files"]["onnx-int8"]["path"] == "onnx/model-int8.onnx"
    assert info["files"]["onnx"]["weights_sha256"] == onnx_backend.weights_digest(folder)


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_onnx_and_pytorch_agree(exported, backend):
    folder, _ = exported
    torch_clf = ComplaintClassifier.from_pretrained(folder, backend="torch")
    onnx_clf = ComplaintClassifier.from_pretrained(folder, backend=backend, num_threads=1)
    assert isinstance(onnx_clf.backend, OnnxBackend) and onnx_clf.backend.num_threads == 1
    expected, got = torch_clf.predict_proba(TEXTS), onnx_clf.predict_proba(TEXTS)
    np.testing.assert_allclose(got, expected, atol=1e-5 if backend == "onnx" else 1e-2)
    assert (torch_clf.decide(got) == torch_clf.decide(expected)).all(axis=1).mean() >= 0.995


def test_parallel_sessions_give_the_same_probabilities_in_input_order(exported):
    folder, _ = exported
    texts = [f"{t} {'again ' * (i % 7)}" for i, t in enumerate(TEXTS * 20)]
    one = ComplaintClassifier.from_pretrained(folder, backend="onnx-int8", num_threads=1)
    three = ComplaintClassifier.from_pretrained(folder, backend="onnx-int8", num_threads=3)
    assert three.backend.parallel == 3
    # small batches and windows so that many batches of several windows run side by side
    np.testing.assert_array_equal(
        three.predict_proba(texts, batch_tokens=64, window=50),
        one.predict_proba(texts, batch_tokens=64, window=50),
    )


def test_auto_picks_the_fastest_fresh_export(exported, tmp_path):
    folder, _ = exported
    assert pick_auto(folder) == "onnx-int8"
    assert ReviewScorer(folder).backend == "onnx-int8"
    # Weights changed after the export: the ONNX files are stale and never used.
    stale = tmp_path / "stale"
    shutil.copytree(folder, stale)
    with open(stale / "model.safetensors", "ab") as handle:
        handle.write(b" ")
    assert pick_auto(stale) == "torch"
    with pytest.raises(ModelFolderError, match="exported from other weights"):
        ComplaintClassifier.from_pretrained(stale, backend="onnx")


def test_missing_export_names_the_command(tiny_model_dir):
    with pytest.raises(ModelFolderError, match=r"woc export-onnx --model .* --quantize int8"):
        ComplaintClassifier.from_pretrained(tiny_model_dir, backend="onnx-int8")


def test_export_refuses_a_file_that_disagrees(exported, tmp_path, monkeypatch):
    folder, _ = exported
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    original = OnnxBackend.__call__
    monkeypatch.setattr(OnnxBackend, "__call__", lambda self, i, m: -original(self, i, m))
    with pytest.raises(
        ModelFolderError,
        match=r"onnx: same labels for 0\.00% of 200 texts.*\(int8 was not attempted\)",
    ):
        export_onnx(copy, quantize="int8", check_texts=TEXTS)
    assert not (copy / "onnx" / "model.onnx").exists()
    assert sorted(p.name for p in (copy / "onnx").iterdir()) == ["export.json", "model-int8.onnx"]
    assert pick_auto(copy) == "onnx-int8"  # the earlier int8 export is still valid


def test_cli_export_onnx(tiny_model_dir, tmp_path):
    folder = tmp_path / "tiny"
    shutil.copytree(tiny_model_dir, folder)
    result = CliRunner().invoke(main, ["export-onnx", "--model", str(folder)])
    assert result.exit_code == 0, result.output
    assert "onnx: " in result.output and "same labels for 100.00%" in result.output
    assert pick_auto(folder) == "onnx"

"""Saving, loading and predicting with ComplaintClassifier."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from wordofclick.errors import ModelFolderError
from wordofclick.model import (
    META_FILE,
    ComplaintClassifier,
    locate_base_model,
    token_budget_batches,
)

TEXTS = [
    "The waiter ignored us for forty minutes, but the pasta was great.",
    "support never answered about my broken phone",
    "lovely",
    "the " * 200,
]


def test_round_trip_gives_identical_probabilities(tiny_model_dir, tmp_path):
    first = ComplaintClassifier.from_pretrained(tiny_model_dir)
    copy = first.save_pretrained(tmp_path / "copy")
    second = ComplaintClassifier.from_pretrained(copy)
    np.testing.assert_array_equal(first.predict_proba(TEXTS), second.predict_proba(TEXTS))
    assert second.labels.names == first.labels.names


def test_plain_transformers_loads_our_folder(tiny_model_dir):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert model.config.id2label[0] == "service_complaint"
    with torch.inference_mode():
        logits = model(**tokenizer(TEXTS[:1], return_tensors="pt")).logits
    ours = ComplaintClassifier.from_pretrained(tiny_model_dir).predict_proba(TEXTS[:1])
    np.testing.assert_allclose(torch.sigmoid(logits).numpy(), ours, atol=1e-5)


def test_batching_and_order_do_not_change_answers(tiny_model_dir):
    classifier = ComplaintClassifier.from_pretrained(tiny_model_dir)
    one_by_one = np.vstack([classifier.predict_proba([t]) for t in TEXTS])
    batched = classifier.predict_proba(TEXTS, batch_tokens=256, window=3)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_thresholds_are_applied_per_label(tiny_model_dir, tmp_path):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "m")
    meta = json.loads((folder / META_FILE).read_text())
    meta["thresholds"] = [0.01, 0.99, 0.01, 0.99]
    (folder / META_FILE).write_text(json.dumps(meta))
    prediction = ComplaintClassifier.from_pretrained(folder).predict(TEXTS[:1])[0]
    assert prediction.labels == ["service_complaint", "service_praise"]
    assert set(prediction.probabilities) == {
        "service_complaint", "product_complaint", "service_praise", "product_praise"
    }


def test_token_budget_batches_respect_the_budget():
    lengths = [5, 50, 7, 30, 30, 2, 64]
    batches = list(token_budget_batches(lengths, batch_tokens=100))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 100


def test_missing_folder_and_files(tiny_model_dir, tmp_path):
    with pytest.raises(ModelFolderError, match="model folder not found"):
        ComplaintClassifier.from_pretrained(tmp_path / "nope")
    folder = shutil.copytree(tiny_model_dir, tmp_path / "no-weights")
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match=r"model\.safetensors is missing"):
        ComplaintClassifier.from_pretrained(folder)
    folder = shutil.copytree(tiny_model_dir, tmp_path / "no-meta")
    (folder / META_FILE).unlink()
    with pytest.raises(ModelFolderError, match="not a wordofclick model folder"):
        ComplaintClassifier.from_pretrained(folder)


def test_newer_format_version_is_refused(tiny_model_dir, tmp_path):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "future")
    meta = json.loads((folder / META_FILE).read_text())
    meta["format_version"] = 99
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelFolderError, match=r"format_version 99 is newer.*upgrade"):
        ComplaintClassifier.from_pretrained(folder)


def test_pickled_weights_are_never_loaded(tiny_model_dir, tmp_path):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "pickle")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ModelFolderError, match="only safetensors"):
        ComplaintClassifier.from_pretrained(folder)


def test_default_base_model_is_found_offline():
    folder = locate_base_model("all-MiniLM-L6-v2")
    assert (folder and __import__("pathlib").Path(folder, "model.safetensors").is_file())
    assert locate_base_model("sentence-transformers/all-MiniLM-L6-v2") == folder


def test_unknown_offline_base_model_is_an_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelFolderError, match="not a local folder"):
        locate_base_model("someone/some-model")


def test_a_single_string_is_refused(tiny_model_dir):
    classifier = ComplaintClassifier.from_pretrained(tiny_model_dir)
    with pytest.raises(TypeError, match=r"pass a list of texts"):
        classifier.predict("rude staff")


def test_missing_format_version_is_called_corrupt(tiny_model_dir, tmp_path):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "corrupt")
    meta = json.loads((folder / META_FILE).read_text())
    del meta["format_version"]
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelFolderError, match=r"format_version is missing"):
        ComplaintClassifier.from_pretrained(folder)


def test_calibration_is_applied_to_the_logits(tiny_model_dir, tmp_path):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "calibrated")
    texts = ["rude staff", "great food", "we went on a tuesday"]
    logits = ComplaintClassifier.from_pretrained(folder).logits(texts)
    meta = json.loads((folder / META_FILE).read_text())
    meta.update(logit_scale=[2.0, 1.0, 0.5, 1.0], logit_bias=[-1.0, 0.0, 0.25, 3.0])
    (folder / META_FILE).write_text(json.dumps(meta))
    got = ComplaintClassifier.from_pretrained(folder).predict_proba(texts)
    scale, bias = np.array(meta["logit_scale"]), np.array(meta["logit_bias"])
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-(logits * scale + bias))), rtol=1e-5)


def test_version_1_folders_without_calibration_still_load(tiny_model_dir, tmp_path):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "v1")
    meta = json.loads((folder / META_FILE).read_text())
    for key in ("logit_scale", "logit_bias", "evaluations"):
        del meta[key]
    meta["format_version"] = 1
    (folder / META_FILE).write_text(json.dumps(meta))
    classifier = ComplaintClassifier.from_pretrained(folder)
    logits = classifier.logits(["rude staff"])
    np.testing.assert_allclose(classifier.predict_proba(["rude staff"]), 1 / (1 + np.exp(-logits)),
                               rtol=1e-6)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("logit_scale", [1.0, 1.0], r"logit_scale has 2 values for 4 labels"),
    ("logit_scale", [1.0, 0.0, 1.0, 1.0], r"every scale must be positive"),
    ("logit_bias", [0.0], r"logit_bias has 1 values for 4 labels"),
])
def test_bad_calibration_is_refused(tiny_model_dir, tmp_path, field, value, message):
    folder = shutil.copytree(tiny_model_dir, tmp_path / "bad")
    meta = json.loads((folder / META_FILE).read_text())
    meta[field] = value
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelFolderError, match=message):
        ComplaintClassifier.from_pretrained(folder)

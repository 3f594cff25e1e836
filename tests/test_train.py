"""Training on the tiny model: reproducible, thresholds saved, early stopping and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wordofclick.errors import DataError
from wordofclick.model import META_FILE, ComplaintClassifier
from wordofclick.settings import load_settings
from wordofclick.train import TrainSettings, length_grouped_batches, positive_weights, train

EXAMPLES = [
    ("the waiter was rude and ignored us", ["service_complaint"]),
    ("staff never answered my call", ["service_complaint"]),
    ("the pasta was cold and terrible", ["product_complaint"]),
    ("my laptop screen is broken", ["product_complaint"]),
    ("friendly helpful staff", ["service_praise"]),
    ("the agent was kind and quick", ["service_praise"]),
    ("delicious pizza great price", ["product_praise"]),
    ("great quality laptop battery", ["product_praise"]),
    ("rude manager but delicious soup", ["service_complaint", "product_praise"]),
    ("we went on a tuesday", []),
]


def write_data(folder, name="train.jsonl", repeat=4):
    path = folder / name
    with path.open("w", encoding="utf-8") as handle:
        for i in range(repeat):
            for text, labels in EXAMPLES:
                handle.write(json.dumps({"text": f"{text} {'!' * i}", "labels": labels}) + "\n")
    return path


def tiny_settings(tmp_path, base, **extra):
    data = write_data(tmp_path)
    dev = write_data(tmp_path, "dev.jsonl", repeat=1)
    values = {
        "base_model": str(base), "train": [str(data)], "dev": [str(dev)], "epochs": 2,
        "batch_size": 8, "learning_rate": 1e-3, "max_length": 32,
        "output_dir": str(tmp_path / "out"), "seed": 7,
    }
    values.update(extra)
    return TrainSettings(**values)


def test_same_seed_same_model(tiny_base_dir, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = train(tiny_settings(tmp_path / "a", tiny_base_dir), progress=False)
    second = train(tiny_settings(tmp_path / "b", tiny_base_dir), progress=False)
    a = ComplaintClassifier.from_pretrained(first.model_dir)
    b = ComplaintClassifier.from_pretrained(second.model_dir)
    texts = [t for t, _ in EXAMPLES]
    np.testing.assert_array_equal(a.predict_proba(texts), b.predict_proba(texts))
    np.testing.assert_array_equal(a.thresholds, b.thresholds)


def test_saved_folder_has_metadata_and_card(tiny_base_dir, tmp_path):
    result = train(tiny_settings(tmp_path, tiny_base_dir), progress=False)
    meta = json.loads((result.model_dir / META_FILE).read_text())
    assert meta["labels"] == ["service_complaint", "product_complaint", "service_praise",
                              "product_praise"]
    assert len(meta["thresholds"]) == 4
    assert meta["data_fingerprint"] and meta["dev_metrics"]["complaint_macro_f1"] >= 0
    assert meta["library_versions"]["torch"].startswith("2.13")
    assert meta["training"]["train_examples"] == 40
    card = (result.model_dir / "README.md").read_text()
    assert "complaint macro-F1" in card and "| service_complaint |" in card


def test_training_updates_the_weights(tiny_base_dir, tmp_path):
    from safetensors.numpy import load_file

    result = train(tiny_settings(tmp_path, tiny_base_dir, epochs=1), progress=False)
    trained = load_file(result.model_dir / "model.safetensors")
    base = load_file(tiny_base_dir / "model.safetensors")
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not np.allclose(trained[name], base[name.removeprefix("bert.")])


def test_early_stopping_stops_before_the_last_epoch(tiny_base_dir, tmp_path):
    # A learning rate of ~0 cannot improve on the first epoch, so patience 1 stops at epoch 2.
    result = train(
        tiny_settings(tmp_path, tiny_base_dir, epochs=6, patience=1, learning_rate=1e-12),
        progress=False,
    )
    assert result.best_epoch == 1
    assert result.epochs_run == 2


def test_dev_split_held_out_when_no_dev(tiny_base_dir, tmp_path):
    settings = tiny_settings(tmp_path, tiny_base_dir, dev=[], dev_fraction=0.25, max_steps=2)
    result = train(settings, progress=False)
    meta = json.loads((result.model_dir / META_FILE).read_text())
    assert meta["training"]["dev_examples"] == 10
    assert meta["training"]["train_examples"] == 30


def test_empty_training_data_is_an_error(tiny_base_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError, match=r"empty\.jsonl: no rows"):
        train(tiny_settings(tmp_path, tiny_base_dir, train=[str(empty)]), progress=False)


def test_optional_absent_sources_are_skipped(tiny_base_dir, tmp_path):
    settings = load_settings(TrainSettings, overrides=[
        f"base_model={tiny_base_dir}", f"output_dir={tmp_path / 'o'}", "max_steps=1",
        "max_length=16",
        f"train=[{{path: {write_data(tmp_path)}}}, {{path: /nope.xml, optional: true}}]",
        f"dev=[{write_data(tmp_path, 'd.jsonl', 1)}]",
    ])
    assert train(settings, progress=False).model_dir.is_dir()


def test_positive_weights_and_length_groups():
    targets = np.array([[1, 0], [0, 0], [0, 0], [0, 0]])
    assert positive_weights(targets, "balanced", 2.0).tolist() == [2.0, 2.0]  # 3.0 and 4.0, capped
    assert positive_weights(targets, "balanced", 10.0).tolist() == [3.0, 4.0]
    assert positive_weights(targets, "none", 2.0).tolist() == [1.0, 1.0]
    lengths = [1, 9, 2, 8, 3, 7, 4, 6]
    batches = length_grouped_batches(lengths, 2, 4, np.random.default_rng(0))
    assert sorted(i for b in batches for i in b) == list(range(8))
    # within a pool of 8 sorted by length, pairs are neighbours in length
    assert all(abs(lengths[b[0]] - lengths[b[1]]) <= 1 for b in batches)

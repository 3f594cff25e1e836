"""Training on the tiny model: reproducible, thresholds saved, early stopping and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wordofclick.errors import DataError, ModelFolderError
from wordofclick.evaluate import compute_metrics
from wordofclick.model import META_FILE, ComplaintClassifier
from wordofclick.settings import ConfigError, load_settings
from wordofclick.train import (
    DataSource,
    Teacher,
    TrainSettings,
    length_grouped_batches,
    load_sources,
    positive_weights,
    train,
)

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


def write_data(folder, name="train.jsonl", repeat=4, tag=""):
    path = folder / name
    with path.open("w", encoding="utf-8") as handle:
        for i in range(repeat):
            for text, labels in EXAMPLES:
                line = {"text": f"{text} {tag}{'!' * i}", "labels": labels}
                handle.write(json.dumps(line) + "\n")
    return path


def tiny_settings(tmp_path, base, **extra):
    data = write_data(tmp_path)
    dev = write_data(tmp_path, "dev.jsonl", repeat=1, tag="(dev) ")
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


def test_a_source_can_give_part_of_itself_to_dev(tiny_base_dir, tmp_path):
    extra = write_data(tmp_path, "extra.jsonl", repeat=2, tag="(extra) ")
    settings = tiny_settings(tmp_path, tiny_base_dir, max_steps=1)
    settings.train.append(DataSource(path=str(extra), dev_fraction=0.5))
    result = train(settings, progress=False)
    training = json.loads((result.model_dir / META_FILE).read_text())["training"]
    # 40 + half of 20 extra in train; the 10 dev rows plus the other half of extra in dev
    assert (training["train_examples"], training["dev_examples"]) == (50, 20)
    card = (result.model_dir / "README.md").read_text()
    assert f"{extra} (50% held out for dev)" in card
    # labels in model order in the dev table, also when rendered again from wordofclick.json
    # (written with sorted keys), as `woc evaluate --record` does
    from wordofclick.model import ModelMeta
    from wordofclick.model_card import render_model_card

    card = render_model_card(ModelMeta.read(result.model_dir))
    dev_table = card[card.index("## Evaluation on the dev data"):]
    assert dev_table.index("| service_complaint |") < dev_table.index("| product_complaint |")


def test_training_texts_also_in_dev_are_dropped(tiny_base_dir, tmp_path):
    settings = tiny_settings(tmp_path, tiny_base_dir, max_steps=1)
    # Same texts as the first repeat of the training file, up to case and spacing.
    dev = tmp_path / "overlap.jsonl"
    dev.write_text("".join(
        json.dumps({"text": text.upper().replace(" ", "  "), "labels": labels}) + "\n"
        for text, labels in EXAMPLES
    ))
    settings.dev = [DataSource(path=str(dev))]
    training = json.loads((train(settings, progress=False).model_dir / META_FILE).read_text())
    assert training["training"]["train_examples"] == 30


def test_platt_calibration_is_saved_and_applied(tiny_base_dir, tmp_path):
    calibrated = train(tiny_settings(tmp_path, tiny_base_dir), progress=False)
    meta = json.loads((calibrated.model_dir / META_FILE).read_text())
    assert len(meta["logit_scale"]) == len(meta["logit_bias"]) == 4
    assert all(s > 0 for s in meta["logit_scale"])
    clf = ComplaintClassifier.from_pretrained(calibrated.model_dir)
    texts = [t for t, _ in EXAMPLES]
    logits = clf.logits(texts)
    expected = 1 / (1 + np.exp(-(logits * meta["logit_scale"] + meta["logit_bias"])))
    np.testing.assert_allclose(clf.predict_proba(texts), expected, rtol=1e-5)
    # The reported dev metrics are those of the calibrated probabilities and saved thresholds.
    dev = [f"{t} (dev) " for t, _ in EXAMPLES]
    targets = np.array([[int(n in labels) for n in clf.labels.names] for _, labels in EXAMPLES])
    report = compute_metrics(targets, clf.predict_proba(dev), clf.thresholds, clf.labels)
    assert report.micro_f1 == pytest.approx(meta["dev_metrics"]["micro_f1"])

    (tmp_path / "plain").mkdir()
    plain = train(tiny_settings(tmp_path / "plain", tiny_base_dir, calibration="none"),
                  progress=False)
    meta = json.loads((plain.model_dir / META_FILE).read_text())
    assert meta["logit_scale"] == [] and meta["logit_bias"] == []


def test_smaller_student_saves_and_loads_with_its_layer_count(tiny_base_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification

    result = train(tiny_settings(tmp_path, tiny_base_dir, num_layers=1, max_steps=2),
                   progress=False)
    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
    plain = AutoModelForSequenceClassification.from_pretrained(result.model_dir)
    assert len(plain.bert.encoder.layer) == 1
    # the one layer kept is the base model's last one, as trained before fine-tuning
    from safetensors.numpy import load_file

    base = load_file(tiny_base_dir / "model.safetensors")
    (tmp_path / "lr0").mkdir()
    untrained = train(tiny_settings(tmp_path / "lr0", tiny_base_dir, num_layers=1, max_steps=1,
                                    learning_rate=1e-30, output_dir=str(tmp_path / "lr0")),
                      progress=False)
    kept = load_file(untrained.model_dir / "model.safetensors")
    name = "encoder.layer.{}.output.dense.weight"
    np.testing.assert_allclose(kept["bert." + name.format(0)], base[name.format(1)], rtol=1e-6)


def test_too_many_layers_is_an_error(tiny_base_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"num_layers=3: the base model has 2 layers"):
        train(tiny_settings(tmp_path, tiny_base_dir, num_layers=3), progress=False)


def test_distillation_mixes_the_teachers_probabilities(tiny_model_dir, tiny_base_dir, tmp_path):
    from wordofclick.data import load_labeled
    from wordofclick.labels import LabelSet
    from wordofclick.train import distillation_targets

    data = load_labeled(write_data(tmp_path, repeat=1), LabelSet.default())
    teacher = ComplaintClassifier.from_pretrained(tiny_model_dir).predict_proba(data.texts)
    mixed, used = distillation_targets(data, Teacher(path=str(tiny_model_dir), weight=0.25),
                                 LabelSet.default())
    np.testing.assert_allclose(mixed, 0.75 * data.targets + 0.25 * teacher, rtol=1e-5)
    assert used == f"{tiny_model_dir} (tiny test)"
    absent = Teacher(path=str(tmp_path / "none"), optional=True)
    assert distillation_targets(data, absent, LabelSet.default()) == (data.targets, None)
    student = train(tiny_settings(tmp_path, tiny_base_dir, teacher=str(tiny_model_dir),
                                  max_steps=2), progress=False)
    meta = json.loads((student.model_dir / META_FILE).read_text())
    assert meta["training"]["settings"]["teacher"]["path"] == str(tiny_model_dir)
    with pytest.raises(ModelFolderError, match="model folder not found"):
        train(tiny_settings(tmp_path, tiny_base_dir, teacher=str(tmp_path / "none")),
              progress=False)


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


def test_a_repeated_source_is_copied_after_dedupe_and_its_bad_rows_reported_once(tmp_path):
    from wordofclick.labels import DEFAULT_LABELS, LabelSet

    small = write_data(tmp_path, "small.jsonl", repeat=1, tag="(small) ")
    with small.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": "", "labels": []}) + "\n")
    big = write_data(tmp_path, "big.jsonl", repeat=3)
    sources = [DataSource(path=str(small), repeat=3), DataSource(path=str(big))]
    data, held_out = load_sources(sources, LabelSet.of(DEFAULT_LABELS), dedupe=True)
    assert held_out is None
    assert len(data) == 3 * 10 + 30
    assert data.texts.count("the waiter was rude and ignored us (small) ") == 3
    assert len(data.set_aside) == 1
    # the copies keep their labels
    rows = [i for i, t in enumerate(data.texts) if t.startswith("we went on a tuesday (small)")]
    assert len(rows) == 3 and not data.targets[rows].any()


def test_repeat_copies_only_what_dedupe_kept(tmp_path):
    from wordofclick.labels import DEFAULT_LABELS, LabelSet

    first = tmp_path / "first.jsonl"
    first.write_text(json.dumps({"text": "Rude staff", "labels": ["service_complaint"]}) + "\n")
    repeated = tmp_path / "repeated.jsonl"
    repeated.write_text("".join(json.dumps(row) + "\n" for row in [
        {"text": "rude  staff", "labels": []},  # the first source's text: dropped, not copied
        {"text": "cold soup", "labels": ["product_complaint"]},
        {"text": "Cold soup", "labels": ["product_complaint"]},  # a repeat inside the source
    ]))
    sources = [DataSource(path=str(first)), DataSource(path=str(repeated), repeat=3)]
    data, _ = load_sources(sources, LabelSet.of(DEFAULT_LABELS), dedupe=True)
    assert data.texts == ["Rude staff", "cold soup", "cold soup", "cold soup"]


def test_fallback_dev_split_counts_each_repeated_review_once(tiny_base_dir, tmp_path):
    settings = tiny_settings(tmp_path, tiny_base_dir, dev=[], dev_fraction=0.25, max_steps=1)
    settings.train = [DataSource(path=settings.train[0].path, repeat=3)]
    result = train(settings, progress=False)
    training = json.loads((result.model_dir / META_FILE).read_text())["training"]
    # 40 distinct rows: a quarter to dev, once each; the other 30 three times in train
    assert (training["dev_examples"], training["train_examples"]) == (10, 90)


def test_repeat_on_a_dev_source_is_refused():
    with pytest.raises(ValueError, match=r"dev: d\.jsonl has repeat, which only a train"):
        TrainSettings(dev=[{"path": "d.jsonl", "repeat": 2}])


def test_dev_fraction_on_a_dev_source_is_refused():
    with pytest.raises(ValueError, match=r"dev: d\.jsonl has dev_fraction, which only a train"):
        TrainSettings(dev=[{"path": "d.jsonl", "dev_fraction": 0.5}])

"""Typed settings: unknown keys, wrong types and overrides give readable messages."""

from __future__ import annotations

import pytest

from wordofclick.settings import ConfigError, apply_overrides, load_settings
from wordofclick.train import TrainSettings


def test_defaults_and_overrides(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("epochs: 3\ntrain: [a.jsonl]\n", encoding="utf-8")
    settings = load_settings(TrainSettings, config, ["epochs=1", "learning_rate=2e-5"])
    assert settings.epochs == 1
    assert settings.learning_rate == pytest.approx(2e-5)
    assert settings.train[0].path == "a.jsonl"
    assert str(settings.model_dir) == "models/default"


def test_typo_names_file_key_and_options(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("lerning_rate: 0.1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_settings(TrainSettings, config)
    message = str(error.value)
    assert str(config) in message
    assert "unknown key 'lerning_rate'" in message
    assert "learning_rate" in message


def test_wrong_type_names_field_and_value(tmp_path):
    with pytest.raises(ConfigError, match=r"field 'epochs'.*got 'many'"):
        load_settings(TrainSettings, overrides=["epochs=many"])


def test_unknown_label_in_config():
    with pytest.raises(ConfigError, match="delivery_complaint"):
        load_settings(TrainSettings, overrides=["labels=[service_complaint, delivery_complaint]"])


def test_bad_override_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_settings(TrainSettings, overrides=["epochs"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(TrainSettings, tmp_path / "missing.yaml")


def test_nested_overrides():
    assert apply_overrides({"a": {"b": 1}}, ["a.c=2", "d.e=x"]) == {"a": {"b": 1, "c": 2},
                                                                  "d": {"e": "x"}}

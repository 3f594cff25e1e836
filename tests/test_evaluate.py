"""Metrics agree with scikit-learn; thresholds are tuned per label; calibration is measured."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from wordofclick.evaluate import (
    compute_metrics,
    expected_calibration_error,
    reliability_plot,
    tune_thresholds,
)
from wordofclick.labels import LabelSet

LABELS = LabelSet.default()
# Hand-made: six reviews, four labels.
TARGETS = np.array(
    [[1, 0, 0, 1], [1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [0, 0, 0, 0], [1, 0, 1, 0]]
)
PROBS = np.array(
    [
        [0.9, 0.2, 0.1, 0.7],
        [0.6, 0.4, 0.2, 0.1],
        [0.3, 0.8, 0.1, 0.3],
        [0.2, 0.1, 0.9, 0.4],
        [0.55, 0.3, 0.2, 0.2],
        [0.4, 0.1, 0.6, 0.1],
    ]
)
THRESHOLDS = np.array([0.5, 0.35, 0.5, 0.35])


def test_metrics_agree_with_scikit_learn():
    report = compute_metrics(TARGETS, PROBS, THRESHOLDS, LABELS)
    decisions = (PROBS >= THRESHOLDS).astype(int)
    for j, name in enumerate(LABELS):
        m = report.per_label[name]
        assert m.precision == pytest.approx(precision_score(TARGETS[:, j], decisions[:, j]))
        assert m.recall == pytest.approx(recall_score(TARGETS[:, j], decisions[:, j]))
        assert m.f1 == pytest.approx(f1_score(TARGETS[:, j], decisions[:, j]))
        assert m.support == TARGETS[:, j].sum()
    assert report.micro_f1 == pytest.approx(f1_score(TARGETS, decisions, average="micro"))
    assert report.macro_f1 == pytest.approx(f1_score(TARGETS, decisions, average="macro"))
    complaint = f1_score(TARGETS[:, :2], decisions[:, :2], average="macro")
    assert report.complaint_macro_f1 == pytest.approx(complaint)
    # by hand: service_complaint predicts rows 0,1,4 -> tp 2, fp 1, fn 1 -> F1 2/3
    assert report.per_label["service_complaint"].f1 == pytest.approx(2 / 3)


def test_thresholds_change_decisions_per_label():
    low = compute_metrics(TARGETS, PROBS, [0.5, 0.5, 0.5, 0.5], LABELS)
    tuned = compute_metrics(TARGETS, PROBS, THRESHOLDS, LABELS)
    assert low.per_label["product_complaint"].recall == pytest.approx(0.5)
    assert tuned.per_label["product_complaint"].recall == pytest.approx(1.0)
    assert low.per_label["service_complaint"].f1 == tuned.per_label["service_complaint"].f1


def test_tuned_thresholds_maximise_f1_per_label():
    thresholds = tune_thresholds(TARGETS, PROBS)
    tuned = compute_metrics(TARGETS, PROBS, thresholds, LABELS)
    for t in (0.1, 0.3, 0.5, 0.7, 0.9):
        fixed = compute_metrics(TARGETS, PROBS, [t] * 4, LABELS)
        for name in LABELS:
            assert tuned.per_label[name].f1 >= fixed.per_label[name].f1 - 1e-9


def test_calibration_error():
    truth = np.array([1, 0, 1, 0])
    assert expected_calibration_error(truth, np.array([1.0, 0.0, 1.0, 0.0])) == 0.0
    assert expected_calibration_error(truth, np.array([0.0, 1.0, 0.0, 1.0])) == 1.0
    assert expected_calibration_error(truth, np.full(4, 0.5)) == pytest.approx(0.0)


def test_reliability_plot_is_written(tmp_path):
    path = reliability_plot(TARGETS, PROBS, LABELS, tmp_path / "r.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

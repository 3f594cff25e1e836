"""Metrics agree with scikit-learn; thresholds are tuned per label; calibration is measured."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, precision_score, recall_score

from wordofclick.evaluate import (
    EvaluationReport,
    complaint_f1_interval,
    complaint_macro_f1,
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


def test_interval_is_the_bootstrap_of_complaint_macro_f1():
    rng = np.random.default_rng(1)
    truth = (rng.random((300, 4)) < 0.3).astype(int)
    said = np.where(rng.random((300, 4)) < 0.8, truth, 1 - truth)
    # the textbook bootstrap: resample rows, recompute the figure with scikit-learn
    resamples = np.random.default_rng(0).integers(0, 300, size=(2000, 300))
    scores = [complaint_macro_f1(truth[rows], said[rows], LABELS) for rows in resamples]
    expected = np.quantile(scores, [0.025, 0.975])
    interval = complaint_f1_interval(truth, said, LABELS, resamples=2000)
    # two Monte Carlo estimates of the same quantiles
    assert interval == pytest.approx(expected.tolist(), abs=0.01)
    point = complaint_macro_f1(truth, said, LABELS)
    assert interval[0] < point < interval[1]
    assert expected[1] - expected[0] > 0.05  # a test that can fail: the interval is not tiny
    # ten times the reviews, a narrower interval around the same figure
    wide = np.diff(interval)[0]
    narrow = np.diff(complaint_f1_interval(np.tile(truth, (10, 1)), np.tile(said, (10, 1)),
                                           LABELS))[0]
    assert narrow < wide / 2
    with pytest.raises(ValueError, match="resamples=0"):
        complaint_f1_interval(truth, said, LABELS, resamples=0)


def test_report_carries_the_interval_and_reads_reports_saved_without_it():
    report = compute_metrics(TARGETS, PROBS, THRESHOLDS, LABELS)
    low, high = report.complaint_macro_f1_interval
    assert 0.0 <= low <= report.complaint_macro_f1 <= high <= 1.0
    old = report.to_dict()
    del old["complaint_macro_f1_interval"]
    assert EvaluationReport.from_dict(old).complaint_macro_f1_interval == []
    assert complaint_f1_interval(TARGETS[:0], TARGETS[:0], LABELS) == []


def test_resamples_without_a_label_do_not_drag_the_interval_down():
    # one service complaint among forty reviews, found; product complaints all found: F1 1.0
    truth = np.zeros((40, 4), dtype=int)
    truth[0, 0] = 1
    truth[::2, 1] = 1
    # about a third of the resamples lack the single positive; counted as F1 0 they would put the
    # lower end at 0.5
    assert complaint_f1_interval(truth, truth, LABELS) == [1.0, 1.0]
    assert complaint_f1_interval(truth[:, [2, 3, 2, 3]], truth[:, [2, 3, 2, 3]], LABELS) == []

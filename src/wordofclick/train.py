"""Fine-tune a transformer into a :class:`~wordofclick.model.ComplaintClassifier`.

A plain PyTorch loop: sigmoid head with BCE and per-label positive weights, dynamic padding with
length-grouped batches, dev evaluation each epoch with early stopping on the complaint macro-F1,
per-label Platt scaling of the logits and thresholds, both fitted on dev. One seed makes a run
reproducible.
"""

from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from wordofclick.data import (
    CORPUS_PREFIX,
    LabeledData,
    combine,
    drop_overlap,
    load_labeled,
)
from wordofclick.datasets import SPLITS
from wordofclick.errors import DataError
from wordofclick.evaluate import (
    EvaluationReport,
    compute_metrics,
    fit_platt_scaling,
    tune_thresholds,
)
from wordofclick.labels import DEFAULT_LABELS, LabelSet
from wordofclick.model import (
    DEFAULT_BASE_MODEL,
    keep_layers,
    new_classifier,
    pad_batch,
    torch_state,
)
from wordofclick.settings import Settings

log = logging.getLogger(__name__)


class DataSource(Settings):
    """One labeled file, or ``corpus:<split>`` for the bundled corpus."""

    path: str
    optional: bool = Field(False, description="skip with a note when the file is absent")
    granularity: Literal["sentence", "review"] = Field(
        "sentence", description="for SemEval-2016 XML: one example per sentence or per review"
    )
    dev_fraction: float | None = Field(
        None, gt=0, lt=1,
        description="move this fraction of this training source into dev (a source with no "
        "dev split of its own, so its reported validation split stays untouched)",
    )
    repeat: int = Field(
        1, ge=1, le=20,
        description="copies of this source's examples in each epoch (oversampling a small source "
        "among large ones): the rows de-duplication kept, copied after it",
    )

    @field_validator("path")
    @classmethod
    def _known_corpus_split(cls, path: str) -> str:
        split = path.removeprefix(CORPUS_PREFIX)
        if path.startswith(CORPUS_PREFIX) and split not in SPLITS:
            raise ValueError(f"unknown corpus split {split!r}: expected corpus:" + "|".join(SPLITS))
        return path


class Teacher(Settings):
    """A saved model whose probabilities are mixed into the targets (knowledge distillation)."""

    path: str
    weight: float = Field(0.5, ge=0, le=1, description="share of the teacher in each target")
    optional: bool = Field(
        False, description="train on the labels alone, with a note, when the folder is absent"
    )


class TrainSettings(Settings):
    """Everything ``woc train`` reads from ``configs/train.yaml``."""

    name: str = Field("default", description="model name; the folder is models/<name>")
    output_dir: str | None = Field(None, description="where to save; default models/<name>")
    base_model: str = DEFAULT_BASE_MODEL
    labels: list[str] = Field(default_factory=lambda: list(DEFAULT_LABELS))
    train: list[DataSource] = Field(default_factory=lambda: [DataSource(path="corpus:train")])
    dev: list[DataSource] = Field(default_factory=lambda: [DataSource(path="corpus:dev")])
    dev_fraction: float = Field(
        0.1, gt=0, lt=1, description="held out from train when no dev source is available"
    )
    dedupe: bool = True
    max_length: int = Field(128, ge=8, le=512)
    epochs: int = Field(4, ge=1)
    max_steps: int | None = Field(None, ge=1, description="stop after this many steps (smoke runs)")
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    pos_weight: Literal["balanced", "none"] = Field(
        "balanced", description="balanced: negatives/positives per label, capped"
    )
    max_pos_weight: float = Field(10.0, ge=1)
    num_layers: int | None = Field(
        None, ge=1,
        description="keep this many of the base model's transformer layers, evenly spaced and "
        "ending with the last: a smaller model that scores faster",
    )
    teacher: Teacher | None = Field(
        None, description="distil from this saved model (a folder path, or path/weight/optional)"
    )
    fixed_threshold: float | None = Field(
        None, gt=0, lt=1,
        description="one threshold for every label instead of tuning them on dev (baselines)",
    )
    calibration: Literal["platt", "none"] = Field(
        "platt", description="platt: per-label scale and bias of the logits fitted on dev"
    )
    patience: int = Field(2, ge=1, description="epochs without dev improvement before stopping")
    length_group_factor: int = Field(
        50, ge=1, description="batches per length-sorted pool (as Hugging Face's grouping)"
    )
    seed: int = 42
    num_threads: int | None = Field(None, ge=1)

    @field_validator("teacher", mode="before")
    @classmethod
    def _teacher_string_is_a_path(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @field_validator("train", "dev", mode="before")
    @classmethod
    def _strings_are_paths(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _check_labels(self) -> TrainSettings:
        LabelSet.of(self.labels)
        if not self.train:
            raise ValueError("train: name at least one labeled data source")
        for source in self.dev:
            if source.dev_fraction:
                raise ValueError(
                    f"dev: {source.path} has dev_fraction, which only a train source can have "
                    "(it moves part of that source into dev); remove it"
                )
            if source.repeat > 1:
                raise ValueError(
                    f"dev: {source.path} has repeat, which only a train source can have "
                    "(copies would count twice in the dev metrics); remove it"
                )
        return self

    @property
    def model_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("models") / self.name


@dataclass
class TrainResult:
    model_dir: Path
    dev_report: EvaluationReport
    best_epoch: int
    epochs_run: int
    seconds: float
    examples_per_second: float


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_sources(
    sources: list[DataSource], labels: LabelSet, dedupe: bool, seed: int = 0
) -> tuple[LabeledData | None, LabeledData | None]:
    """Load and combine the sources that exist, and the parts they hold out for dev.

    Returns ``(data, held_out)``; either is ``None`` when there is nothing in it (every source
    optional and absent, or no source with a ``dev_fraction``).
    """
    parts, repeats, held_out = [], [], []
    for source in sources:
        is_file = not source.path.startswith(CORPUS_PREFIX)
        if is_file and source.optional and not Path(source.path).exists():
            log.info("optional data %s is absent; training without it", source.path)
            continue
        data = load_labeled(source.path, labels, granularity=source.granularity)
        if source.dev_fraction:
            data, dev = split_dev(data, source.dev_fraction, seed)
            held_out.append(dev)
        parts.append(data)
        repeats.append(source.repeat)
    return (
        combine(parts, labels, dedupe=dedupe, repeats=repeats) if parts else None,
        combine(held_out, labels, dedupe=dedupe) if held_out else None,
    )


def split_dev(data: LabeledData, fraction: float, seed: int) -> tuple[LabeledData, LabeledData]:
    """Hold out a dev split; whole groups (companies) stay on one side when groups are known."""
    rng = np.random.default_rng(seed)
    keys = data.groups if any(data.groups) else [str(i) for i in range(len(data))]
    unique = sorted(set(keys))
    rng.shuffle(unique)
    held = set(unique[: max(1, round(len(unique) * fraction))])
    dev = [i for i, k in enumerate(keys) if k in held]
    train = [i for i, k in enumerate(keys) if k not in held]
    return data.subset(train), data.subset(dev)


def positive_weights(targets: np.ndarray, mode: str, cap: float) -> np.ndarray:
    """Negatives over positives per label, capped so a rare label cannot dominate the loss.

    >>> positive_weights(np.array([[1, 0], [0, 0], [0, 1], [0, 0]]), "balanced", 10).tolist()
    [3.0, 3.0]
    """
    if mode == "none":
        return np.ones(targets.shape[1], dtype=np.float32)
    positives = targets.sum(axis=0)
    negatives = len(targets) - positives
    return np.clip(negatives / np.maximum(positives, 1), 1.0, cap).astype(np.float32)


def choose_thresholds(
    targets: np.ndarray, probabilities: np.ndarray, fixed: float | None
) -> np.ndarray:
    if fixed is not None:
        return np.full(targets.shape[1], fixed, dtype=np.float32)
    return tune_thresholds(targets, probabilities)


def distillation_targets(
    data: LabeledData, teacher: Teacher | None, labels: LabelSet
) -> tuple[np.ndarray, str | None]:
    """``(1 - weight) * labels + weight * teacher probabilities``: soft targets for a student.

    The teacher's calibrated probabilities carry what a hard 0/1 label cannot (how sure a
    larger model is), which is what lets a smaller model get close to it. Without a teacher (or
    an optional one that is absent) the targets are the labels. Also returns which teacher
    (folder, name and version) was used, or None.
    """
    from wordofclick.model import ComplaintClassifier

    if teacher is None:
        return data.targets, None
    if teacher.optional and not Path(teacher.path).is_dir():
        log.info("optional teacher %s is absent; training on the labels alone", teacher.path)
        return data.targets, None
    model = ComplaintClassifier.from_pretrained(teacher.path, backend="auto")
    if model.labels.names != labels.names:
        raise DataError(
            f"teacher {teacher.path} has labels {list(model.labels.names)}, the student "
            f"{list(labels.names)}: distil from a model with the same labels"
        )
    log.info("teacher %s (%s) is labeling %d training examples",
             teacher.path, model.version, len(data))
    soft = model.predict_proba(data.texts)
    mixed = (1 - teacher.weight) * data.targets + teacher.weight * soft
    return mixed.astype(np.float32), f"{teacher.path} ({model.name} {model.version})"


def length_grouped_batches(
    lengths: list[int], batch_size: int, group_factor: int, rng: np.random.Generator
) -> list[list[int]]:
    """Shuffle, sort pools of ``batch_size * group_factor`` by length, cut into batches, shuffle.

    Similar lengths share a batch (little padding) while the order stays random across epochs.
    """
    order = rng.permutation(len(lengths))
    pool = batch_size * group_factor
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool].tolist(), key=lambda i: -lengths[i])
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def train(settings: TrainSettings, progress: bool = True) -> TrainResult:
    """Fine-tune, pick the best epoch and thresholds on dev, and save the model folder.

    >>> result = train(TrainSettings(epochs=1))  # doctest: +SKIP
    >>> result.model_dir  # doctest: +SKIP
    PosixPath('models/default')
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    started = time.perf_counter()
    labels = LabelSet.of(settings.labels)
    seed_everything(settings.seed)
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)

    train_data, held_out = load_sources(settings.train, labels, settings.dedupe, settings.seed)
    if train_data is None:
        raise DataError(
            "train: every data source was optional and absent; nothing to train on "
            "(check the paths under train: in the config)"
        )
    dev_data, _ = load_sources(settings.dev, labels, settings.dedupe)  # no dev_fraction here
    if held_out is not None:
        dev_data = held_out if dev_data is None else combine(
            [dev_data, held_out], labels, dedupe=settings.dedupe
        )
    if dev_data is None:
        # Split the distinct texts, so that dev holds each once and the copies of a repeated
        # source stay together; drop_overlap below takes every copy of a dev text out of train.
        distinct = combine([train_data], labels, dedupe=True)
        dev_data = split_dev(distinct, settings.dev_fraction, settings.seed)[1]
        log.info("no dev data: holding out %d of the training examples", len(dev_data))
    train_data, overlap = drop_overlap(train_data, dev_data)
    if overlap:
        log.info("dropped %d training examples whose text is also in dev", overlap)
    log.info("training on %d examples, dev %d; label counts %s",
             len(train_data), len(dev_data), train_data.label_counts())

    classifier = new_classifier(settings.base_model, labels, settings.max_length, settings.name)
    model = classifier.model
    if settings.num_layers:
        keep_layers(model, settings.num_layers)
    encoded = classifier.encode(train_data.texts)
    lengths = [len(ids) for ids in encoded]
    soft_targets, teacher_used = distillation_targets(train_data, settings.teacher, labels)
    targets = torch.from_numpy(soft_targets)
    loss_fn = torch.nn.BCEWithLogitsLoss(
        pos_weight=torch.from_numpy(
            positive_weights(train_data.targets, settings.pos_weight, settings.max_pos_weight)
        )
    )
    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": settings.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
         "weight_decay": 0.0},
    ]
    # Fused AdamW is about 14% faster on CPU (PERF-NOTES) and is what the HF Trainer uses.
    optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate, fused=True)
    steps_per_epoch = math.ceil(len(train_data) / settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    if settings.max_steps:
        total_steps = min(total_steps, settings.max_steps)
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(total_steps * settings.warmup_ratio), total_steps
    )
    rng = np.random.default_rng(settings.seed)
    pad_id = classifier.tokenizer.pad_token_id or 0

    best_score, best_epoch, best_state, best_thresholds = -1.0, 0, None, None
    stale, step, examples_seen, epochs_run = 0, 0, 0, 0
    loop_seconds = 0.0
    bar = tqdm(total=total_steps, desc="train", unit="step", disable=not progress)
    for epoch in range(1, settings.epochs + 1):
        epochs_run = epoch
        model.train()
        epoch_start = time.perf_counter()
        running = 0.0
        batches = length_grouped_batches(
            lengths, settings.batch_size, settings.length_group_factor, rng
        )
        for batch in batches:
            if step >= total_steps:
                break
            input_ids, mask = pad_batch([encoded[i] for i in batch], pad_id)
            logits = model(
                input_ids=torch.from_numpy(input_ids), attention_mask=torch.from_numpy(mask)
            ).logits
            loss = loss_fn(logits, targets[batch])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            examples_seen += len(batch)
            running = 0.9 * running + 0.1 * loss.item() if running else loss.item()
            bar.update(1)
            bar.set_postfix(epoch=epoch, loss=f"{running:.4f}")
        loop_seconds += time.perf_counter() - epoch_start

        model.eval()
        probabilities = classifier.predict_proba(dev_data.texts)
        thresholds = choose_thresholds(dev_data.targets, probabilities, settings.fixed_threshold)
        report = compute_metrics(dev_data.targets, probabilities, thresholds, labels)
        score = report.complaint_macro_f1
        bar.set_postfix(epoch=epoch, loss=f"{running:.4f}", dev_complaint_f1=f"{score:.3f}")
        log.info("epoch %d: loss %.4f, dev complaint macro-F1 %.4f (micro-F1 %.4f)",
                 epoch, running, score, report.micro_f1)
        if score > best_score:
            best_score, best_epoch, stale = score, epoch, 0
            best_state, best_thresholds = torch_state(model), thresholds
        else:
            stale += 1
            if stale >= settings.patience:
                log.info("dev score has not improved for %d epochs: stopping early", stale)
                break
        if step >= total_steps:
            break
    bar.close()

    assert best_state is not None and best_thresholds is not None
    model.load_state_dict(best_state)
    model.eval()
    meta = classifier.meta
    if settings.calibration == "platt":
        dev_logits = classifier.logits(dev_data.texts)
        meta.logit_scale, meta.logit_bias = fit_platt_scaling(dev_data.targets, dev_logits)
        probabilities = meta.calibrate(dev_logits)
        # Calibration moves every probability, so the thresholds are tuned again on top of it.
        best_thresholds = choose_thresholds(
            dev_data.targets, probabilities, settings.fixed_threshold
        )
    else:
        probabilities = classifier.predict_proba(dev_data.texts)
    dev_report = compute_metrics(
        dev_data.targets, probabilities, best_thresholds, labels,
        data="dev", model=settings.name,
    )
    seconds = time.perf_counter() - started
    meta.thresholds = [float(t) for t in best_thresholds]
    meta.version = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    meta.data_fingerprint = train_data.fingerprint()
    meta.dev_metrics = dev_report.to_dict()
    meta.training = {
        "settings": settings.model_dump(mode="json"),
        "train_examples": len(train_data),
        "dev_examples": len(dev_data),
        "set_aside_rows": len(train_data.set_aside),
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "steps": step,
        "seconds": round(seconds, 1),
        "teacher": teacher_used,
    }
    classifier.thresholds = np.asarray(meta.thresholds, dtype=np.float32)
    from wordofclick.model_card import render_model_card

    classifier.save_pretrained(settings.model_dir, model_card=render_model_card(meta))
    return TrainResult(
        model_dir=settings.model_dir,
        dev_report=dev_report,
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        seconds=seconds,
        examples_per_second=examples_seen / loop_seconds if loop_seconds else 0.0,
    )


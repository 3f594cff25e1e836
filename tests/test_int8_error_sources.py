"""scripts/int8_error_sources.py: its PyTorch rounding is ONNX Runtime's, and its graphs compute it.

The script's conclusions (which rounding loses the labels, and what the label-keeping schemes cost
in ONNX Runtime) hold only if the emulation and the graphs agree with each other; checked here on
one dense layer with random data.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "int8_error_sources.py"


@pytest.fixture(scope="module")
def sources():
    spec = importlib.util.spec_from_file_location("int8_error_sources", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(model: onnx.ModelProto | Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def dense_layer(path: Path, weight: np.ndarray) -> None:
    """x (batch, tokens, k) @ weight, named like an encoder layer's MatMul in our exports."""
    k, n = weight.shape
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="/encoder/layer.0/dense/MatMul")],
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "tokens", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "tokens", n])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def activations(seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((3, 5, 16)).astype(np.float32)
    x[1, 2, 7] = 25.0  # one outlier channel value, as the model's layer inputs have
    return x


def test_per_tensor_rounding_is_dynamic_quantize_linear(sources):
    x = activations()
    graph = helper.make_graph(
        [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "scale", "zero"]),
         helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"])],
        "round",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 5, 16])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    expected = run(model, {"x": x})
    got = sources.round_per_tensor(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # The outlier stretches the one range: every other token is rounded more coarsely than it
    # would be without the outlier in the batch.
    without_outlier = x.copy()
    without_outlier[1, 2, 7] = 0.0
    others = np.ones(x.shape[:2], dtype=bool)
    others[1, 2] = False
    error_with = np.abs(got - x)[others].mean()
    error_without = np.abs(
        sources.round_per_tensor(torch.from_numpy(without_outlier)).numpy() - without_outlier
    )[others].mean()
    assert error_with > 2 * error_without


def test_per_token_graph_computes_the_emulated_product(sources, tmp_path):
    weight = np.random.default_rng(1).standard_normal((16, 6)).astype(np.float32)
    dense_layer(tmp_path / "dense.onnx", weight)
    sources.per_token_graph(tmp_path / "dense.onnx", tmp_path / "per-token.onnx")
    x = activations()
    got = run(tmp_path / "per-token.onnx", {"x": x})
    rounded_w = sources.round_weights(torch.from_numpy(weight).T).T
    emulated = (sources.round_per_token(torch.from_numpy(x)) @ rounded_w).numpy()
    np.testing.assert_allclose(got, emulated, atol=1e-4)
    # One range per token: the outlier no longer coarsens the other tokens' rounding.
    per_tensor = sources.round_per_tensor(torch.from_numpy(x)).numpy() @ weight
    assert np.abs(got - x @ weight).mean() < np.abs(per_tensor - x @ weight).mean() / 2


def test_outlier_split_keeps_the_top_channels_exact(sources, tmp_path):
    weight = np.random.default_rng(2).standard_normal((16, 6)).astype(np.float32)
    dense_layer(tmp_path / "dense.onnx", weight)
    x = activations()
    maxima = sources.onnx_channel_maxima(tmp_path / "dense.onnx", [{"x": x}])
    assert np.argmax(maxima["x"]) == 7
    sources.outlier_split_graph(tmp_path / "dense.onnx", tmp_path / "split.onnx", maxima, 1)
    got = run(tmp_path / "split.onnx", {"x": x})
    # Channel 7 alone, in fp32, gives exactly its share of the product.
    only_outlier = np.zeros_like(x)
    only_outlier[..., 7] = x[..., 7]
    np.testing.assert_allclose(
        run(tmp_path / "split.onnx", {"x": only_outlier}), only_outlier @ weight, atol=1e-5
    )
    # The whole graph computes the emulation: the rest rounded per tensor times uint8 weights.
    rest = torch.from_numpy(x).clone()
    rest[..., 7] = 0.0
    emulated = (sources.round_per_tensor(rest)
                @ sources.round_weights_uint8(torch.from_numpy(weight).T).T).numpy()
    np.testing.assert_allclose(got, emulated + only_outlier @ weight, atol=1e-4)
    # The rest is rounded on a range the outlier no longer stretches: closer than per tensor.
    plain = x @ weight
    per_tensor = sources.round_per_tensor(torch.from_numpy(x)).numpy() @ weight
    assert np.abs(got - plain).mean() < np.abs(per_tensor - plain).mean() / 2

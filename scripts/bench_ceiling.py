"""How fast can this machine score at all? Matrix-multiply rates against the model's arithmetic.

A transformer encoder spends nearly all its arithmetic in the dense layers' matrix multiplies.
This script times those multiplies alone in ONNX Runtime, fp32 and dynamically quantized int8, at
the model's own shapes (a batch of ``--tokens`` token rows), one session per CPU side by side as
the scoring backend runs them, and turns the rates into a ceiling: the reviews per second that no
scoring path of this model can beat on this machine, whatever it does around the multiplies.

    python scripts/bench_ceiling.py --model models/default --tokens-per-review 55

Compare the ceiling with ``scripts/bench_score.py``'s paths on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


def dense_shapes(config: dict) -> list[tuple[int, int]]:
    """(in, out) of every dense layer an encoder layer runs per token, times the layer count."""
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    per_layer = [(hidden, hidden)] * 4 + [(hidden, inner), (inner, hidden)]
    return per_layer * config["num_hidden_layers"]


def matmul_model(path: Path, k: int, n: int, seed: int = 0) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = (np.random.default_rng(seed).standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", n])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def seconds_per_call(path: Path, rows: int, k: int, workers: int, repeats: int) -> float:
    """Wall seconds per multiply with ``workers`` single-threaded sessions running at once."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sessions = [ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                for _ in range(workers)]
    x = np.random.default_rng(1).standard_normal((rows, k)).astype(np.float32)

    def loop(session) -> None:
        for _ in range(repeats):
            session.run(None, {"x": x})

    for session in sessions:
        session.run(None, {"x": x})
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(loop, sessions))
    return (time.perf_counter() - started) / (repeats * workers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=Path("models/default"))
    parser.add_argument("--tokens", type=int, default=1024, help="token rows per multiply")
    parser.add_argument("--tokens-per-review", type=float, default=55.0,
                        help="mean tokens per review, special tokens included")
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    from onnxruntime.quantization import QuantType, quantize_dynamic

    config = json.loads((args.model / "config.json").read_text(encoding="utf-8"))
    workers = os.cpu_count() or 1
    shapes = dense_shapes(config)
    seconds = {"fp32": 0.0, "int8": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for k, n in sorted(set(shapes)):
            fp32, int8 = Path(tmp, f"{k}x{n}.onnx"), Path(tmp, f"{k}x{n}.int8.onnx")
            matmul_model(fp32, k, n)
            quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8, per_channel=True)
            count = shapes.count((k, n))
            for kind, path in (("fp32", fp32), ("int8", int8)):
                took = seconds_per_call(path, args.tokens, k, workers, args.repeats)
                seconds[kind] += count * took
                print(f"{kind} {k}x{n}: {2 * args.tokens * k * n / took / workers / 1e9:6.1f} "
                      f"GFLOP/s per session, {workers} sessions side by side")
    flops_per_token = sum(2 * k * n for k, n in shapes)
    print(f"dense arithmetic: {flops_per_token / 1e6:.1f} MFLOP per token, "
          f"{flops_per_token * args.tokens_per_review / 1e9:.2f} GFLOP per review of "
          f"{args.tokens_per_review:g} tokens")
    for kind, total in seconds.items():
        # ``total`` is already per call with the sessions' work shared out.
        tokens_per_second = args.tokens / total
        print(f"{kind}: the dense layers alone allow at most "
              f"{tokens_per_second / args.tokens_per_review:,.0f} reviews/s")
    print(f"int8 / fp32 on the dense layers: {seconds['fp32'] / seconds['int8']:.2f}x")


if __name__ == "__main__":
    main()

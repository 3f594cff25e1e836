"""Training throughput: our loop against the Hugging Face Trainer's defaults.

Same base model, same examples, same batch size and number of steps, one process, run one after
the other; prints examples per second for each and the ratio. Evaluation is excluded from both.

    python scripts/bench_train.py --steps 60 --batch-size 32
    python scripts/bench_train.py --data ../shared/data/absa/mams_acsa_train.xml

Timings on shared machines are noisy: compare the ratio, and run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from wordofclick.data import load_labeled
from wordofclick.labels import LabelSet
from wordofclick.model import locate_base_model
from wordofclick.train import TrainSettings, train

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared/data/absa/mams_acsa_train.xml"


def ours(data: str, steps: int, batch_size: int, max_length: int, base: str) -> float:
    with tempfile.TemporaryDirectory() as folder:
        settings = TrainSettings(
            # A small held-out dev keeps the (untimed) end-of-run evaluation short.
            base_model=base, train=[data], dev=[], dev_fraction=0.05, max_steps=steps, epochs=1,
            batch_size=batch_size, max_length=max_length, output_dir=folder, dedupe=False,
        )
        return train(settings, progress=False).examples_per_second


def hf_trainer(data: str, steps: int, batch_size: int, max_length: int, base: str) -> float:
    import datasets
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    labels = LabelSet.default()
    labeled = load_labeled(data, labels)
    source = locate_base_model(base)
    tokenizer = AutoTokenizer.from_pretrained(source)
    dataset = datasets.Dataset.from_dict(
        {"text": labeled.texts, "labels": [row.tolist() for row in labeled.targets]}
    ).map(lambda b: tokenizer(b["text"], truncation=True, max_length=max_length), batched=True,
          remove_columns=["text"])
    dataset = dataset.cast_column("labels", datasets.Sequence(datasets.Value("float32")))
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=len(labels), problem_type="multi_label_classification"
    )
    torch.manual_seed(42)
    with tempfile.TemporaryDirectory() as folder:
        arguments = TrainingArguments(
            output_dir=folder, per_device_train_batch_size=batch_size, max_steps=steps,
            learning_rate=5e-5, report_to=[], save_strategy="no", logging_strategy="no",
            use_cpu=True, dataloader_num_workers=0, disable_tqdm=True, seed=42,
        )
        trainer = Trainer(model=model, args=arguments, train_dataset=dataset,
                          data_collator=DataCollatorWithPadding(tokenizer))
        started = time.perf_counter()
        trainer.train()
        return steps * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA) if DEFAULT_DATA.exists()
                        else "corpus:train")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--base-model", default="all-MiniLM-L6-v2")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    common = (args.data, args.steps, args.batch_size, args.max_length, args.base_model)
    ours_rate = ours(*common)
    trainer_rate = hf_trainer(*common)
    print(f"data {args.data}, {args.steps} steps of batch {args.batch_size}, max length "
          f"{args.max_length}, base {args.base_model}, torch threads {os.cpu_count()} cores")
    print(f"{'path':<32}{'examples/s':>12}")
    print(f"{'wordofclick loop':<32}{ours_rate:>12.1f}")
    print(f"{'HF Trainer (defaults)':<32}{trainer_rate:>12.1f}")
    print(f"ratio ours / Trainer: {ours_rate / trainer_rate:.2f}")


if __name__ == "__main__":
    main()

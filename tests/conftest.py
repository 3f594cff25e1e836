"""Shared fixtures: a tiny randomly initialised BERT, built here, never downloaded."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "absa"

WORDS = (
    "the a an and but or not no very so too was were is are it this that they we i you my our "
    "their staff waiter waitress manager agent support service rude friendly helpful kind ignored "
    "slow fast quick hung up never answered reply replied called call phone broken food pasta "
    "pizza soup cold hot tasty great good bad terrible awful lovely delicious price expensive "
    "cheap quality product delivery late damaged box flight delayed room dirty clean bank fee "
    "refund account bill wifi network signal laptop screen battery keyboard at all for of to in "
    "on with after hours minutes days weeks again ! . , ? '"
).split()


def build_tiny_base(folder: Path) -> Path:
    """A two-layer BERT with hidden size 32 and a word-level vocabulary, saved as safetensors."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *letters]
    vocab += ["##" + letter for letter in letters]
    vocab = list(dict.fromkeys(vocab))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=37, max_position_embeddings=512, pad_token_id=0,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory) -> Path:
    return build_tiny_base(tmp_path_factory.mktemp("tiny-base"))


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_base_dir, tmp_path_factory) -> Path:
    """A saved wordofclick model folder (random head) on the tiny base, shared read-only."""
    import torch

    from wordofclick.labels import LabelSet
    from wordofclick.model import new_classifier

    torch.manual_seed(0)
    classifier = new_classifier(str(tiny_base_dir), LabelSet.default(), max_length=64, name="tiny")
    classifier.meta.version = "test"
    return classifier.save_pretrained(tmp_path_factory.mktemp("tiny-model") / "tiny")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)

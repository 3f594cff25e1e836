"""The examples in docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "wordofclick.labels", "wordofclick.settings", "wordofclick.exports", "wordofclick.absa",
    "wordofclick.model", "wordofclick.train", "wordofclick.evaluate",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0

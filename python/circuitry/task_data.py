"""Tasks from Python values or from task files (DESIGN.md section 3, the task-file format)."""
from __future__ import annotations

import json
import os
from typing import Optional, Sequence, Union

import numpy as np

from . import _circuitry
from ._circuitry import Task, Tokenizer

TokenSet = Union[int, Sequence[int]]


def _tokenizer_of(tokenizer) -> Optional[Tokenizer]:
    """A Tokenizer, or a Model's own (None when it has none: GPT-2's is then used, as the command line)."""
    if tokenizer is None or isinstance(tokenizer, Tokenizer):
        return tokenizer
    return tokenizer.tokenizer


def load_task(path: str | os.PathLike, tokenizer=None) -> Task:
    """Reads a task file (JSON Lines). Text fields without ids are tokenized with ``tokenizer`` (a Tokenizer or a
    Model, whose own tokenizer is used); without one, GPT-2's, as the command line does."""
    return _circuitry.read_task(os.fspath(path), _tokenizer_of(tokenizer))


def _ids(value, what: str):
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (int, np.integer)):
        return int(value)
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):
        raise _circuitry.Error(f"{what} must be token ids (an int or a list of ints), got {value!r}") from None


def make_task(clean, corrupted, answer: Optional[Sequence[TokenSet]] = None, wrong: Optional[Sequence[TokenSet]] = None,
              outputs: Optional[Sequence[int]] = None) -> Task:
    """A task from token ids: ``clean`` and ``corrupted`` are lists of sequences (or 2-d integer arrays) of equal
    lengths pairwise; ``answer`` and ``wrong`` hold one id or a list of ids per example (omit both for kl and l2);
    ``outputs`` the output dimensions the l2 metric reads. Checked as a task file is."""
    clean, corrupted = list(clean), list(corrupted)
    n = len(clean)
    for name, values in (("corrupted", corrupted), ("answer", answer), ("wrong", wrong)):
        if values is not None and len(values) != n:
            raise _circuitry.Error(f"{name} has {len(values)} entries for {n} clean sequences; give one per example")
    lines = []
    for i in range(n):
        line = {"clean": _ids(clean[i], f"clean[{i}]"), "corrupted": _ids(corrupted[i], f"corrupted[{i}]")}
        if answer is not None:
            line["answer"] = _ids(answer[i], f"answer[{i}]")
        if wrong is not None:
            line["wrong"] = _ids(wrong[i], f"wrong[{i}]")
        if outputs is not None:
            line["outputs"] = [int(o) for o in outputs]
        lines.append(json.dumps(line))
    return _circuitry.task_from_jsonl("\n".join(lines) + "\n", "the task", None)

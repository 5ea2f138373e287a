"""The task generators of ``circuitry task`` (IOI, Greater-Than, docstring, induction): deterministic in the seed,
the same examples as the command line for the same tokenizer. Each returns a Task whose ``lines`` are the task
file the command line writes (text, ids and the generator's keys) and whose ``metric`` is the task's metric."""
from __future__ import annotations

import json
import sys

from . import _circuitry
from ._circuitry import Task
from .task_data import _tokenizer_of

_METRICS = {"ioi": "logit_diff", "greater-than": "prob_diff", "docstring": "logit_diff_max", "induction": "logit_diff"}


def generate(kind: str, n: int, seed: int = 1, tokenizer=None) -> Task:
    """``circuitry task KIND --n N --seed S``: ``tokenizer`` is a Tokenizer or a Model (its own tokenizer), else
    GPT-2's. Words of the generator's lists that are not one token are left out, with a line on stderr."""
    lines, skipped = _circuitry.generate_task(kind, n, seed, _tokenizer_of(tokenizer))
    if skipped:
        shown = ", ".join(json.dumps(w) for w in skipped[:12]) + (", ..." if len(skipped) > 12 else "")
        print(f"task {kind}: skipped {len(skipped)} words of the generator's lists that are not one token "
              f"in this vocabulary ({shown})", file=sys.stderr)
    task = _circuitry.task_from_jsonl(lines, f"generated {kind} task", None)
    task.lines = lines
    task.metric = _METRICS[kind]
    return task


def ioi(n: int, seed: int = 1, tokenizer=None) -> Task:
    """Indirect object identification (Wang et al. 2022): answer IO, wrong S, corrupted ABC; metric logit_diff."""
    return generate("ioi", n, seed, tokenizer)


def greater_than(n: int, seed: int = 1, tokenizer=None) -> Task:
    """Greater-Than (Hanna et al. 2023), two-digit or decisive-digit form as the tokenizer allows; metric prob_diff."""
    return generate("greater-than", n, seed, tokenizer)


def docstring(n: int, seed: int = 1, tokenizer=None) -> Task:
    """Docstring (Heimersheim and Janiak 2023, ACDC's settings); metric logit_diff_max."""
    return generate("docstring", n, seed, tokenizer)


def induction(n: int, seed: int = 1, tokenizer=None) -> Task:
    """Induction (Olsson et al. 2022) on words: a repeated random half; metric logit_diff."""
    return generate("induction", n, seed, tokenizer)

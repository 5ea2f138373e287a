"""Scores against a ground truth: ``circuitry roc`` and ``circuitry compare``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from . import _circuitry
from ._circuitry import Graph, Task
from .circuits import _as_float64, edge_flags
from .model import Model


@dataclass
class Roc:
    method: str
    n_edges: int
    n_true: int
    auc_trapezoid: float
    auc_pessimistic: float
    fpr: List[float]
    tpr: List[float]


@dataclass
class MethodRoc:
    method: str
    auc: float
    auc_pessimistic: float
    seconds: float
    edges_scored: int
    fpr: List[float]
    tpr: List[float]
    scores: np.ndarray
    circuits: Optional[List[dict]] = None  # acdc: {"threshold", "n_edges"} per circuit


def ground_truth(graph: Graph, truth, key: str = "edges") -> np.ndarray:
    """One flag per edge from a ground-truth file, a shipped name (ioi, greaterthan, docstring, tracr-reverse,
    tracr-proportion; ``key`` picks a variant), a list of edge names, or a Circuit."""
    if isinstance(truth, str):
        return _circuitry.ground_truth(graph, truth, key)
    return edge_flags(graph, truth)


def roc(scores, truth, key: str = "edges") -> Roc:
    """ROC of an Attribution's (or AcdcResult's) scores by |score| against the ground truth."""
    flags = ground_truth(scores.graph, truth, key)
    r = _circuitry.roc(scores.graph, _as_float64(scores.scores), flags)
    method = getattr(scores, "method", "acdc")
    return Roc(method, scores.graph.n_edges, int(flags.sum()), r["auc_trapezoid"], r["auc_pessimistic"], r["fpr"], r["tpr"])


def compare(model: Model, task: Task, truth, methods: Optional[Sequence[str]] = None, metric: str = "logit_diff",
            acdc_metric: str = "kl", thresholds: Optional[Sequence[float]] = None, steps: int = 5, ablation: str = "resample",
            lanes: int = 8, key: str = "edges", positions: str = "last", memory_budget: Optional[int] = None,
            mask_edges: Optional[int] = None, mask_steps: int = 500) -> List[MethodRoc]:
    """Every method's ROC against one ground truth (``circuitry compare``); without ``methods``, every method,
    exact only for graphs of at most 5,000 edges. ``memory_budget`` (MiB): the attribution methods' and exact
    patching's working memory (``--memory-budget``; default: each one's). ``mask_edges`` and ``mask_steps``:
    learn-mask's target (default: a twentieth of the edges) and steps (``--mask-edges``, ``--mask-steps``)."""
    flags = ground_truth(model.graph, truth, key)
    results = _circuitry.compare(model._loaded, task, flags, list(methods or []), metric, acdc_metric,
                                 [float(t) for t in (thresholds or [])], steps, ablation, lanes, memory_budget or 0, positions,
                                 mask_edges or 0, mask_steps)
    return [MethodRoc(**r) for r in results]

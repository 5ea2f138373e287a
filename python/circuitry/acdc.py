"""ACDC (Conmy et al. 2023): ``circuitry acdc``, one circuit per threshold of a sweep."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from . import _circuitry
from ._circuitry import Graph, Task
from .circuits import Circuit, edge_flags
from .model import Model


@dataclass
class AcdcCircuit:
    threshold: float
    n_edges: int
    distance: float
    metric: float
    runs: int
    circuit: Circuit


@dataclass
class AcdcResult:
    """A sweep: its circuits (ascending thresholds) and each edge's score, the largest threshold whose circuit
    holds it (0 if none), so that ``prune`` and ``roc`` take it as they take an Attribution."""
    thresholds: List[float]
    metric: str
    ablation: str
    clean_metric: float
    circuits: List[AcdcCircuit]
    scores: np.ndarray
    graph: Graph = field(repr=False)
    d_model: int

    @property
    def edges(self) -> Dict[str, float]:
        return dict(zip(self.graph.edges, self.scores.tolist()))


def acdc(model: Model, task: Task, threshold: Optional[float] = None, thresholds: Optional[Sequence[float]] = None,
         metric: str = "kl", ablation: str = "resample", lanes: int = 8, positions: str = "last", edges=None,
         progress: Optional[Callable[[int, int], None]] = None) -> AcdcResult:
    """ACDC with ``threshold`` or ascending ``thresholds`` (default: the sweep {1, 2, 5} x 10^-5..10^-1), distance
    ``metric`` (kl by default), ``ablation`` resample, zero or mean, ``lanes`` candidates per batched run.
    ``edges`` (edge names, a Circuit or one flag per edge; ``--edges``) restricts every pass to those edges: the
    others are removed from the start. ``progress(done, total)`` counts receivers over every pass."""
    if threshold is not None and thresholds is not None:
        raise _circuitry.Error("give threshold or thresholds, not both")
    ts = [float(threshold)] if threshold is not None else [float(t) for t in (thresholds or [])]
    flags = None if edges is None else edge_flags(model.graph, edges)
    r = _circuitry.acdc(model._loaded, task, metric, positions, ts, ablation, lanes, flags, progress)
    d_model = int(model.config["d_model"])
    scores = r["scores"]
    circuits = [AcdcCircuit(c["threshold"], c["n_edges"], c["distance"], c["metric"], c["runs"],
                            Circuit(model.graph, c["in_graph"], scores, d_model)) for c in r["circuits"]]
    return AcdcResult(r["thresholds"], metric, ablation, r["clean_metric"], circuits, scores, model.graph, d_model)

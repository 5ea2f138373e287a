"""Circuit quality: ``circuitry evaluate`` (faithfulness of a circuit; the MIB curve, CPR and CMD of scores)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

from . import _circuitry
from ._circuitry import Task
from .circuits import Circuit, _as_float64, edge_flags
from .model import Model


@dataclass
class CircuitEvaluation:
    """``evaluate --circuit``: M(full) = clean_metric, M(empty) = corrupted_metric (every edge patched under the
    ablation), M(circuit), and faithfulness (None when M(full) = M(empty))."""
    metric: str
    ablation: str
    clean_metric: float
    corrupted_metric: float
    circuit_metric: float
    faithfulness: Optional[float]
    n_edges_in_graph: int


@dataclass
class FaithfulnessCurve:
    """``evaluate --scores``: faithfulness of the top edges at MIB's fractions, its CPR and CMD."""
    metric: str
    clean_metric: float
    corrupted_metric: float
    cpr: float
    cmd: float
    curve: List[dict]  # {"fraction", "n_edges_in_graph", "faithfulness"}


def evaluate(model: Model, task: Task, circuit=None, scores=None, metric: str = "logit_diff", ablation: Optional[str] = None,
             positions: str = "last"):
    """The faithfulness of ``circuit`` (a Circuit, edge names or one flag per edge) with the edges outside it
    ablated (resample, zero or mean), or, given ``scores`` (an Attribution), the MIB curve of its top edges."""
    if (circuit is None) == (scores is None):
        raise _circuitry.Error("evaluate: give either circuit or scores (for the MIB curve)")
    if scores is not None:
        if ablation is not None:
            raise _circuitry.Error("evaluate: ablation applies to circuit; the MIB curve of scores patches the edges it "
                                   "leaves out with the corrupted run")
        return faithfulness_curve(model, task, scores, metric=metric, positions=positions)
    ablation = ablation or "resample"
    flags = edge_flags(model.graph, circuit)
    return CircuitEvaluation(**_circuitry.evaluate(model._loaded, task, metric, positions, ablation, flags))


def faithfulness_curve(model: Model, task: Task, scores, metric: str = "logit_diff", positions: str = "last") -> FaithfulnessCurve:
    """Faithfulness of top_n(scores, floor(r E)) with dead ends removed, for MIB's fractions r; CPR and CMD."""
    values = scores.scores if hasattr(scores, "scores") else scores
    return FaithfulnessCurve(**_circuitry.faithfulness_curve(model._loaded, task, metric, positions, _as_float64(values)))


__all__ = ["Circuit", "CircuitEvaluation", "FaithfulnessCurve", "evaluate", "faithfulness_curve"]

"""From scores to circuits: ``circuitry prune`` (top_n, threshold, greedy; dead ends removed) and circuit files."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from . import _circuitry
from ._circuitry import Graph


@dataclass
class Circuit:
    """A set of edges of a graph: ``in_graph`` holds one flag per edge, in graph order."""
    graph: Graph = field(repr=False)
    in_graph: np.ndarray = field(repr=False)
    scores: np.ndarray = field(repr=False)
    d_model: int
    n_edges_before_pruning: Optional[int] = None  # prune(): edges chosen before dead ends were removed

    @property
    def n_edges(self) -> int:
        return int(self.in_graph.sum())

    @property
    def edges(self) -> List[str]:
        """The names of the edges in the circuit, in graph order."""
        names = self.graph.edges
        return [names[i] for i in np.flatnonzero(self.in_graph)]

    def to_json(self) -> str:
        """The circuit file's text (EAP-IG's Graph.to_json layout, as ``circuitry prune`` writes it)."""
        return _circuitry.circuit_json(self.graph, self.in_graph, _as_float64(self.scores), self.d_model)

    def save(self, path: str | os.PathLike) -> None:
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json())

    def __repr__(self) -> str:
        pruned = ""
        if self.n_edges_before_pruning is not None and self.n_edges_before_pruning != self.n_edges:
            pruned = f" ({self.n_edges_before_pruning} chosen, {self.n_edges_before_pruning - self.n_edges} removed as dead ends)"
        return f"<circuitry.Circuit: {self.n_edges} of {self.graph.n_edges} edges{pruned}>"


def prune(scores, top_n: Optional[int] = None, threshold: Optional[float] = None, greedy: Optional[int] = None,
          no_prune: bool = False) -> Circuit:
    """``circuitry prune``: the ``top_n`` edges by |score|, those with |score| >= ``threshold``, or ``greedy`` edges
    grown from the logits; then dead ends are removed unless ``no_prune``. ``scores`` is an Attribution or
    an AcdcResult."""
    modes = {"top_n": top_n, "threshold": threshold, "greedy": greedy}
    given = [(k, v) for k, v in modes.items() if v is not None]
    if len(given) != 1:
        raise _circuitry.Error("prune: give exactly one of top_n, threshold or greedy")
    mode, value = given[0]
    values = _as_float64(scores.scores)
    in_graph, before = _circuitry.prune(scores.graph, values, mode, float(value), not no_prune)
    return Circuit(scores.graph, in_graph, values, scores.d_model, before)


def load_circuit(path: str | os.PathLike, graph: Graph) -> Circuit:
    """A circuit file (EAP-IG's layout), checked against ``graph``."""
    path = os.fspath(path)
    in_graph = _circuitry.read_circuit(graph, path)
    with open(path, encoding="utf-8") as f:
        j = json.load(f)
    scores = np.array([j["edges"][name].get("score", 0.0) for name in graph.edges], dtype=np.float64)
    return Circuit(graph, in_graph, scores, int(j.get("cfg", {}).get("d_model", 0)))


def edge_flags(graph: Graph, edges) -> np.ndarray:
    """One uint8 flag per edge from a Circuit, a list of edge names or a flag array."""
    if isinstance(edges, Circuit):
        return edges.in_graph
    if isinstance(edges, np.ndarray) and (np.issubdtype(edges.dtype, np.integer) or edges.dtype == np.bool_):
        return np.ascontiguousarray(edges, dtype=np.uint8)
    flags = np.zeros(graph.n_edges, dtype=np.uint8)
    for name in edges:
        flags[graph.edge_index(str(name))] = 1  # an unknown name is an Error naming it
    return flags


def _as_float64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)

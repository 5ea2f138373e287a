"""Learned edge masks (Edge Pruning, Bhaskar et al. 2024): ``circuitry learn-mask``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional

import numpy as np

from . import _circuitry
from ._circuitry import Task
from .circuits import Circuit
from .model import Model


@dataclass
class LearnedMask:
    """The hard circuit (scores = alpha = exp(log_alpha), as the CLI's circuit file), the final log_alpha and the
    run's log, the CLI's ``--log`` object: steps, loss, faithfulness_loss, expected_edges, circuit_faithfulness (F of
    the hard circuit), seed (the winning restart's), restarts ([{seed, n_edges, circuit_faithfulness, objective}]),
    the settings."""
    circuit: Circuit
    log_alpha: np.ndarray = field(repr=False)
    log: Dict[str, Any] = field(repr=False)


def learn_mask(model: Model, task: Task, edges: Optional[int] = None, l0: Optional[float] = None, steps: int = 500,
               lr: float = 0.1, multiplier_lr: float = 0.4, seed: int = 1, restarts: int = 1, metric: str = "kl",
               ablation: str = "resample", positions: str = "last",
               progress: Optional[Callable[[int, int], None]] = None) -> LearnedMask:
    """A circuit from a hard-concrete mask per edge, learned with AdamW against ``metric``'s faithfulness loss (KL to
    the clean run by default) and either a target edge count (``edges``: a Lagrangian drives E[L0] there, the top
    ``edges`` by log_alpha are kept) or an L0 weight (``l0``: the edges with log_alpha > 0 are kept). ``restarts``
    runs the seeds seed, seed + 1, ... and keeps the hard circuit of least objective. ``progress(done, total)``
    counts steps over every restart."""
    if (edges is None) == (l0 is None):
        raise _circuitry.Error("learn-mask: give either edges (the circuit's size) or l0 (the L0 weight)")
    if edges is not None and (isinstance(edges, bool) or not isinstance(edges, int) or edges <= 0):
        raise _circuitry.Error(f"learn-mask: edges must be a positive integer, got {edges!r}")
    for name, value in (("steps", steps), ("restarts", restarts)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise _circuitry.Error(f"learn-mask: {name} must be a positive integer, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise _circuitry.Error(f"learn-mask: seed must be a non-negative integer, got {seed!r}")
    r = _circuitry.learn_mask(model._loaded, task, metric, positions, edges or 0, float(l0 or 0.0), steps, float(lr),
                              float(multiplier_lr), seed, restarts, ablation, progress)
    scores, log_alpha, in_graph = r.pop("scores"), r.pop("log_alpha"), r.pop("in_graph")
    return LearnedMask(Circuit(model.graph, in_graph, scores, int(model.config["d_model"])), log_alpha, r)

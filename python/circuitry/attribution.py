"""Edge scores: ``circuitry attribute`` (eap, eap-ig, clean-corrupted, gim, atp-star, exact)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional

import numpy as np

from . import _circuitry
from ._circuitry import Graph, Task
from .model import Model

Progress = Callable[[int, int], None]

# The options of gim and atp-star and their defaults (the command line's --qk-fix, --softmax-temperature, ...;
# DESIGN.md section 2), recorded in the scores file as the command line records them.
_METHOD_OPTIONS = {
    "atp-star": {"qk_fix": True, "grad_drop": True},
    "gim": {"freeze_norm": True, "softmax_temperature": 2.0, "qkv_scales": [0.25, 0.25, 0.5], "mlp_scales": [0.5, 0.5]},
}


@dataclass
class Attribution:
    """Scores of every edge: ``scores`` in graph order (``graph.edges``), ``edges`` by name."""
    method: str
    metric: str
    clean_metric: float
    corrupted_metric: float
    scores: np.ndarray
    node_scores: np.ndarray
    graph: Graph = field(repr=False)
    d_model: int
    steps: Optional[int] = None  # eap-ig
    edges_scored: Optional[int] = None  # exact with a selection of edges
    options: Dict[str, object] = field(default_factory=dict)  # gim's and atp-star's

    @property
    def edges(self) -> Dict[str, float]:
        """Edge name -> score, in graph order."""
        return dict(zip(self.graph.edges, self.scores.tolist()))

    def to_json(self) -> dict:
        """The scores file of ``circuitry attribute`` (DESIGN.md section 3), as a dict."""
        j = {"method": self.method, "metric": self.metric, "clean_metric": self.clean_metric,
             "corrupted_metric": self.corrupted_metric}
        if self.steps is not None:
            j["steps"] = self.steps
        if self.edges_scored is not None:
            j["edges_scored"] = self.edges_scored
        j.update(self.options)
        j["d_model"] = self.d_model
        j["edges"] = self.edges
        return j


def attribute(model: Model, task: Task, method: str = "eap-ig", metric: str = "logit_diff", steps: int = 5,
              positions: str = "last", memory_budget: Optional[int] = None, edges=None,
              progress: Optional[Progress] = None, **method_options) -> Attribution:
    """Scores every edge with ``method``: eap, eap-ig (``steps`` interpolation steps), clean-corrupted, gim,
    atp-star or exact. gim takes ``freeze_norm``, ``softmax_temperature``, ``qkv_scales`` and ``mlp_scales``,
    atp-star ``qk_fix`` and ``grad_drop`` (the command line's options and defaults).

    ``memory_budget`` (MiB) is the method's budget (``--memory-budget``); ``edges`` (exact only: edge names, a
    Circuit or one flag per edge) scores just those edges, the others 0. ``progress(done, total)`` is called
    as exact patching goes (tqdm: ``lambda done, total: bar.update(done - bar.n)``)."""
    from .circuits import edge_flags
    flags = None if edges is None else edge_flags(model.graph, edges)
    options = dict(_METHOD_OPTIONS.get(method, {}))
    unknown = sorted(set(method_options) - set(options))
    if unknown:
        raise _circuitry.Error(f"attribute: {', '.join(unknown)} is not an option of method {method!r}"
                               + (f" (its options: {', '.join(options)})" if options else ""))
    for key, value in method_options.items():
        options[key] = [float(v) for v in value] if key.endswith("_scales") else float(value) if key == "softmax_temperature" else bool(value)
    r = _circuitry.attribute(model._loaded, task, method, metric, positions, steps, memory_budget or 0, flags, progress, options)
    return Attribution(method=r["method"], metric=metric, clean_metric=r["clean_metric"], corrupted_metric=r["corrupted_metric"],
                       scores=r["scores"], node_scores=r["node_scores"], graph=model.graph, d_model=int(model.config["d_model"]),
                       steps=steps if method == "eap-ig" else None,
                       edges_scored=None if flags is None else int(flags.sum()), options=options)

"""Path patching (Goldowsky-Dill et al. 2023; Wang et al. 2022): ``circuitry path-patch``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from . import _circuitry
from ._circuitry import Task
from .model import Model


@dataclass
class PathPatch:
    metric: str
    effect: float
    clean_metric: float
    patched_metric: float


@dataclass
class PathSet:
    delta: str
    aue: float
    ate: float
    proportion_explained: float


def path_patch(model: Model, task: Task, senders: Sequence[str], receivers: Sequence[str], metric: str = "logit_diff",
               recompute_mlps: bool = False, positions: str = "last") -> PathPatch:
    """The effect on ``metric`` of the senders' corrupted outputs reaching the receivers (ports such as
    ``a1.h0<q>``, ``m1``, ``logits``) through direct paths only."""
    return PathPatch(**_circuitry.path_patch(model._loaded, task, metric, positions, list(senders), list(receivers), recompute_mlps))


def path_set(model: Model, task: Task, paths: Sequence[Sequence[str]], delta: str = "kl", positions: str = "last") -> PathSet:
    """How much of the behaviour a set of paths (chains of edge names ending at logits) explains."""
    return PathSet(**_circuitry.path_set(model._loaded, task, delta, positions, [list(p) for p in paths]))

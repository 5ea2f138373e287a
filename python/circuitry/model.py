"""A loaded model: its config, graph and tokenizer, and its activations and gradients at hook points."""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from . import _circuitry
from ._circuitry import Graph, Task, Tokenizer


class Model:
    """A model circuitry reads (Hugging Face or TransformerLens directory, GGUF file), in float32, float64 or bfloat16."""

    def __init__(self, loaded: _circuitry.Model, path: str):
        self._loaded = loaded
        self.path = path
        self.graph: Graph = loaded.graph
        """The computational graph: node, port and edge names in graph order."""
        self.config: Dict[str, object] = loaded.config
        """Sizes and components, with TransformerLens' key names (n_layers, d_model, ...)."""

    @property
    def dtype(self) -> str:
        return self._loaded.dtype

    @property
    def tokenizer(self) -> Optional[Tokenizer]:
        """The model's own tokenizer (a GGUF file's, a directory's tokenizer.json or vocab.json + merges.txt), or None."""
        return self._loaded.tokenizer

    def run_with_cache(self, tokens, names: Optional[Sequence[str]] = None) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        """Runs token sequences (a list of lists, right-padded with 0, or a 2-d integer array) and returns the
        logits at each sequence's last position [batch, vocab] and the activations at the hook points
        (TransformerLens names: ``blocks.0.attn.hook_pattern`` [batch, head, query, key], ...), all of
        them when ``names`` is None."""
        logits, activations, _ = _circuitry.record(self._loaded, _sequences(tokens), list(names or []), None, "logit_diff", "last")
        return logits, activations

    def gradients(self, task: Task, metric: str = "logit_diff", names: Optional[Sequence[str]] = None,
                  positions: str = "last") -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
        """The activations of the task's clean run at the hook points and the gradients of ``metric``
        with respect to them (dicts by hook name, same shapes)."""
        _, activations, gradients = _circuitry.record(self._loaded, [], list(names or []), task, metric, positions)
        return activations, gradients

    def __repr__(self) -> str:
        c = self.config
        return (f"<circuitry.Model {self.path!r}: {c['n_layers']} layers x {c['n_heads']} heads, d_model {c['d_model']}, "
                f"{self.graph.n_edges} edges, {self.dtype}>")


def load_model(path: str | os.PathLike, dtype: str = "float32") -> Model:
    """Loads a Hugging Face directory (GPT-2, GPT-NeoX/Pythia, Llama, Qwen2, Qwen3, Mistral), a TransformerLens
    directory or a GGUF file; ``dtype`` is float32 (default, as the command line), float64, or bfloat16 (float32
    weights whose large GEMMs take bfloat16 inputs, on CPUs with AMX-BF16 or AVX512-BF16, as ``--dtype bfloat16``)."""
    path = os.fspath(path)
    return Model(_circuitry.load_model(path, dtype), path)


def _sequences(tokens) -> list:
    if isinstance(tokens, np.ndarray):
        if tokens.ndim == 1:
            tokens = tokens[None, :]
        if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
            raise _circuitry.Error("tokens must be a 2-d array of integer token ids [batch, pos]")
        return tokens.tolist()
    tokens = list(tokens)
    if tokens and isinstance(tokens[0], (int, np.integer)):
        return [[int(t) for t in tokens]]
    return [[int(t) for t in seq] for seq in tokens]

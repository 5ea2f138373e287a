"""circuitry from Python: circuit discovery in transformer language models.

The numbers are those of the ``circuitry`` command line (the same C++ library computes both):

    import circuitry
    model = circuitry.load_model("gpt2")                 # HF / TransformerLens directory or .gguf file
    task = circuitry.tasks.ioi(32, seed=1, tokenizer=model.tokenizer)
    result = circuitry.attribute(model, task, method="eap-ig", steps=5)
    result.edges["a9.h9->logits"], result.scores          # dict by edge name; NumPy array in graph order
    circuit = circuitry.prune(result, top_n=100)
    circuitry.evaluate(model, task, circuit).faithfulness

Options and defaults are the command line's (DESIGN.md section 4). Bad input raises
circuitry.Error (a ValueError) with circuitry's message; Ctrl-C raises KeyboardInterrupt.
"""
from ._circuitry import (Error, Graph, Task, Tokenizer, __version__, choices, gpt2_tokenizer, load_tokenizer, set_threads,
                         threads)
from . import tasks
from .acdc import AcdcCircuit, AcdcResult, acdc
from .attribution import Attribution, attribute
from .circuits import Circuit, load_circuit, prune
from .comparison import MethodRoc, Roc, compare, ground_truth, roc
from .evaluation import CircuitEvaluation, FaithfulnessCurve, evaluate, faithfulness_curve
from .learned_mask import LearnedMask, learn_mask
from .model import Model, load_model
from .path_patching import PathPatch, PathSet, path_patch, path_set
from .task_data import load_task, make_task

Error.__module__ = "circuitry"  # shown as circuitry.Error in tracebacks

__all__ = [
    "AcdcCircuit", "AcdcResult", "Attribution", "Circuit", "CircuitEvaluation", "Error", "FaithfulnessCurve", "Graph",
    "LearnedMask", "MethodRoc", "Model", "PathPatch", "PathSet", "Roc", "Task", "Tokenizer", "__version__", "acdc", "attribute",
    "choices", "compare", "evaluate", "faithfulness_curve", "gpt2_tokenizer", "ground_truth", "learn_mask", "load_circuit", "load_model",
    "load_task", "load_tokenizer", "make_task", "path_patch", "path_set", "prune", "roc", "set_threads", "tasks",
    "threads",
]

#!/usr/bin/env python3
"""ACDC reference fixtures: an independent float64 PyTorch transcription of ACDC as
/work/shared/DESIGN.md section 2 defines it, run on the fixture models that
make_fixtures.py writes.  Run it after make_fixtures.py, with the same Python (torch and
numpy: Debian's /usr/bin/python3 where it has torch, else /work/scratch/peers/bin/python):

    /usr/bin/python3 tests/make_acdc_fixtures.py              # every model below
    /usr/bin/python3 tests/make_acdc_fixtures.py hf-qwen3     # only the named model(s)

For each fixture model (gpt2-tiny, gpt2-small3, attn-only and the Hugging Face hf-pythia,
hf-pythia-sequential, hf-llama, hf-llama-gqa, hf-qwen2, hf-mistral, hf-qwen3), or with
names on the command line only for those (no other file is touched), it writes
tests/fixtures/<name>/acdc.json: for two metrics
(kl, logit_diff) and two thresholds each, the edges ACDC removes under resample
ablation, the circuit's distance and the smallest margin |d' - d - tau| met by any
decision (the C++ test needs the decisions to be away from the threshold).

The pass, in words: start with every edge, d = D(clean) = 0; visit the receivers
(ports) from the last (logits) back to the first; for each, its incoming edges from
the latest upstream node back to `input`; patch the edge on top of every edge removed
so far; if d' - d < tau remove it and set d = d', else keep it.  D is KL(p_clean ||
p_run) for kl and M(clean) - M(run) for logit_diff.  Every tentative run is a whole
forward of every example from the embeddings (make_fixtures.run), one at a time.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402  (the model, the graph and the patched runs)

CASES = {"kl": [1e-3, 1e-2], "logit_diff": [1e-2, 5e-2]}
MODELS = ["gpt2-tiny", "gpt2-small3", "attn-only"] + mf.HF_FIXTURES


def load(name):
    """GPT-2 fixtures (make_fixtures.py) or Hugging Face GPT-NeoX / Llama-family
    checkpoints (make_hf_family_fixtures.py, read as make_fixtures.py reads them)."""
    d = mf.FIXTURES / name
    config = json.loads((d / "config.json").read_text())
    lines = [json.loads(s) for s in (d / "task.jsonl").read_text().splitlines() if s.strip()]
    if config["model_type"] == "gpt2":
        stored = mf.read_safetensors(d / "model.safetensors")
        values = {(k[len("transformer."):] if k.startswith("transformer.") else k): v for k, v in stored.items()
                  if not k.endswith(".attn.bias") and not k.endswith(".attn.masked_bias")}
        model = mf.Model(config, values)
    else:
        model = mf.read_hf_checkpoint(d)
    graph = mf.Graph(model)
    return model, graph, [mf.Example(model, graph, line) for line in lines]


def task_metric(name, task, patched):
    """M of the clean run with `patched` ((u, port) pairs) carrying out_u(x')."""
    total = 0.0
    for ex in task:
        last = mf.patched_last_logits(model_g, graph_g, ex, patched)
        total += mf.metric_value(name, last, ex).item() / len(task)
    return total


def acdc(name, tau, task):
    clean = task_metric(name, task, [])
    distance = (lambda m: m) if name == "kl" else (lambda m: clean - m)
    d = distance(clean)
    removed, margin = [], float("inf")
    for port in reversed(graph_g.ports):
        for u in reversed(graph_g.upstream[port]):
            d_new = distance(task_metric(name, task, removed + [(u, port)]))
            margin = min(margin, abs(d_new - d - tau))
            if d_new - d < tau:
                removed.append((u, port))
                d = d_new
    return removed, d, margin


def main(only=()):
    """Every model of MODELS, or with `only` (fixture names) just those."""
    global model_g, graph_g
    unknown = sorted(set(only) - set(MODELS))
    assert not unknown, f"unknown model(s) {unknown}; known: {' '.join(MODELS)}"
    torch.set_num_threads(1)
    for model_name in MODELS:
        if only and model_name not in only:
            continue
        model_g, graph_g, task = load(model_name)
        cases = []
        for metric, taus in CASES.items():
            for tau in taus:
                removed, d, margin = acdc(metric, tau, task)
                names = [mf.edge_name(u, p) for u, p in removed]
                cases.append({"metric": metric, "threshold": tau, "ablation": "resample", "removed": names,
                              "n_edges_in_graph": len(graph_g.edges) - len(names), "distance": d,
                              "min_margin": margin})
                print(f"{model_name} {metric} tau={tau}: removed {len(names)} of {len(graph_g.edges)}, "
                      f"d={d:.6g}, min margin {margin:.3g}")
        mf.write_json(mf.FIXTURES / model_name / "acdc.json", {"model": model_name, "cases": cases})


if __name__ == "__main__":
    np.set_printoptions(precision=17)
    main(sys.argv[1:])

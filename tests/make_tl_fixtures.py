#!/usr/bin/env python3
"""TransformerLens checkpoints for circuitry's loader tests.

It builds small random `transformer_lens.HookedTransformer`s, one per supported shape
of DESIGN.md section 3 (TransformerLens checkpoint), and writes each to
tests/fixtures/tl-NAME/:

    config.json        the HookedTransformerConfig, as cfg.to_dict() gives it
                       (JSON-serialisable fields only)
    model.safetensors  model.state_dict() as TransformerLens keeps it, buffers included
    task.jsonl         a small task (clean / corrupted / answer / wrong)
    tl-logits.json     TransformerLens's own logits of every example, float64 and float32

plus tests/fixtures/tl-unsupported/*.json, configs that circuitry must refuse.
tests/make_fixtures.py then reads these directories back with its own independent
float64 implementation, checks its logits against tl-logits.json and writes
expected.json.  See tests/fixtures/README.md.

It needs a TransformerLens that still has HookedTransformer: 4.0 removed it (its
TransformerBridge reads these checkpoints through
`transformer_lens.utilities.tl_checkpoint_conversion`, but no longer writes them).
The fixtures were made with transformer-lens 2.18.0, the last 2.x, whose state_dict is
the one saved checkpoints in the wild have (a full [n_ctx, n_ctx] `attn.mask`).  With the
~/peers environment (torch, transformers, einops, jaxtyping, ...):

    ~/peers/bin/pip install --target /tmp/tl2 --no-deps transformer-lens==2.18.0 better-abc
    PYTHONPATH=/tmp/tl2 ~/peers/bin/python tests/make_tl_fixtures.py
    /usr/bin/python3 tests/make_fixtures.py

The output is deterministic (fixed seeds; the weights are drawn with numpy, not torch).
"""

import copy
import importlib.metadata
import json
import sys
from pathlib import Path

import numpy as np
import torch

try:
    from transformer_lens import HookedTransformer, HookedTransformerConfig
except ImportError as e:
    sys.exit(f"make_tl_fixtures.py needs a TransformerLens with HookedTransformer (< 4.0): {e}")
from safetensors.torch import save_file

torch.set_num_threads(1)

FIXTURES = Path(__file__).resolve().parent / "fixtures"


# ----------------------------------------------------------------------------
# The models (DESIGN.md section 3: what circuitry must load)
# ----------------------------------------------------------------------------

# name -> (HookedTransformerConfig fields, weight seed, task lengths, task seed)
MODELS = {
    # GPT-2's shape in TransformerLens's layout.
    "tl-gelu-new": (dict(n_layers=2, n_heads=2, d_model=16, d_head=8, d_mlp=32, d_vocab=33, n_ctx=12,
                         act_fn="gelu_new", normalization_type="LN", attention_dir="causal"),
                    11, [3, 6, 8, 4, 5], 111),
    # Exact (erf) GELU; heads narrower than d_model / n_heads (3 x 5 = 15 < 18).
    "tl-gelu": (dict(n_layers=2, n_heads=3, d_model=18, d_head=5, d_mlp=40, d_vocab=35, n_ctx=10,
                     act_fn="gelu", normalization_type="LN", attention_dir="causal"),
                12, [5, 3, 7, 8], 112),
    # Bidirectional attention (no mask; TL's mask buffer is still lower-triangular) and ReLU.
    "tl-relu-bidir": (dict(n_layers=2, n_heads=2, d_model=16, d_head=8, d_mlp=24, d_vocab=31, n_ctx=12,
                           act_fn="relu", normalization_type="LN", attention_dir="bidirectional", eps=1e-4),
                      13, [4, 8, 3, 6, 5], 113),
    # The tracr shape: no layer norm at all, bidirectional, ReLU, a smaller output
    # vocabulary (d_vocab_out < d_vocab), heads wider than d_model / n_heads (2 x 12 > 20).
    "tl-nonorm-relu": (dict(n_layers=2, n_heads=2, d_model=20, d_head=12, d_mlp=28, d_vocab=32, d_vocab_out=24,
                            n_ctx=10, act_fn="relu", normalization_type=None, attention_dir="bidirectional"),
                       14, [6, 4, 8, 3], 114),
    # Attention only (no blocks.{l}.ln2 / mlp), heads wider than d_model / n_heads (3 x 6 > 12).
    "tl-attn-only": (dict(n_layers=2, n_heads=3, d_model=12, d_head=6, d_vocab=31, n_ctx=16,
                          attn_only=True, normalization_type="LN", attention_dir="causal"),
                     15, [7, 3, 5, 8, 4], 115),
    # LNPre: layer norm without weight or bias (no ln1 / ln2 / ln_final tensors at all).
    "tl-lnpre": (dict(n_layers=2, n_heads=2, d_model=24, d_head=12, d_mlp=36, d_vocab=34, n_ctx=14,
                      act_fn="gelu_new", normalization_type="LNPre", attention_dir="causal"),
                 16, [8, 5, 3, 7], 116),
}

# name -> HookedTransformerConfig fields of a model circuitry must refuse (config only).
UNSUPPORTED = {
    "rotary": dict(n_layers=2, n_heads=2, d_model=16, d_head=8, d_mlp=32, d_vocab=33, n_ctx=12,
                   act_fn="gelu_new", normalization_type="LN", positional_embedding_type="rotary", rotary_dim=8),
    "shortformer": dict(n_layers=2, n_heads=2, d_model=16, d_head=8, d_mlp=32, d_vocab=33, n_ctx=12,
                        act_fn="gelu_new", normalization_type="LN", positional_embedding_type="shortformer"),
    "solu": dict(n_layers=2, n_heads=2, d_model=16, d_head=8, d_mlp=32, d_vocab=33, n_ctx=12,
                 act_fn="solu_ln", normalization_type="LN"),
    "rms": dict(n_layers=2, n_heads=2, d_model=16, d_head=8, d_mlp=32, d_vocab=33, n_ctx=12,
                act_fn="gelu_new", normalization_type="RMS"),
}


def make_config(fields, seed):
    return HookedTransformerConfig(**fields, seed=seed, device="cpu")


def config_json(cfg):
    """cfg.to_dict() restricted to what JSON can hold (numpy scalars become Python numbers;
    torch.dtype and the like are dropped)."""
    out = {}
    for key, value in cfg.to_dict().items():
        if isinstance(value, np.generic):
            value = value.item()
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        out[key] = value
    return out


def randomize(model, seed):
    """Re-draw every parameter so that nothing is trivially zero or one: matrices (W_*)
    ~ N(0, 0.2), layer-norm gains (*.w) ~ 1 + N(0, 0.1), biases (b_*, *.b) ~ N(0, 0.1),
    b_U, b_Q / b_K / b_V and b_O included.  Buffers (attn.mask, attn.IGNORE) are kept."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.split(".")[-1]
            if leaf.startswith("W_"):
                value = rng.normal(0.0, 0.2, size=p.shape)
            elif leaf == "w":
                value = 1.0 + rng.normal(0.0, 0.1, size=p.shape)
            elif leaf.startswith("b_") or leaf == "b":
                value = rng.normal(0.0, 0.1, size=p.shape)
            else:
                raise ValueError(f"unexpected parameter {name}")
            p.copy_(torch.tensor(value, dtype=torch.float32))


def random_task(d_vocab, d_vocab_out, lengths, seed):
    """One example per length; corrupted = clean with about half of the positions (at
    least one) replaced by other ids; answer != wrong, both below d_vocab_out."""
    rng = np.random.default_rng(seed)
    lines = []
    for P in lengths:
        clean = rng.integers(0, d_vocab, size=P)
        corrupted = clean.copy()
        replace = rng.random(P) < 0.5
        replace[rng.integers(0, P)] = True
        for i in np.flatnonzero(replace):
            corrupted[i] = (clean[i] + rng.integers(1, d_vocab)) % d_vocab  # always a different id
        answer, wrong = rng.choice(d_vocab_out, size=2, replace=False)
        lines.append({"clean": [int(t) for t in clean], "corrupted": [int(t) for t in corrupted],
                      "answer": int(answer), "wrong": int(wrong)})
    return lines


def tl_logits(model, lines, as_float):
    """TransformerLens's logits of every example, batch 1: {"logits": last position per
    example, "corrupted_logits": the same, "all_logits" / "all_corrupted_logits": [P][V]}."""
    out = {"logits": [], "corrupted_logits": [], "all_logits": [], "all_corrupted_logits": []}
    with torch.no_grad():
        for line in lines:
            for key, tokens in (("logits", line["clean"]), ("corrupted_logits", line["corrupted"])):
                logits = model(torch.tensor([tokens]), return_type="logits")[0]  # [P, d_vocab_out]
                assert logits.shape == (len(tokens), model.cfg.d_vocab_out)
                rows = [[as_float(v) for v in row] for row in logits.tolist()]
                out[key].append(rows[-1])
                out["all_" + key].append(rows)
    return out


def float32_value(v):
    """A float32 number as the shortest decimal that reads back as that float32 (it is
    exact once a reader rounds it to float32; as a double it is within float32 rounding)."""
    return float(str(np.float32(v)))


def write_json(path, obj, indent=1):
    Path(path).write_text(json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def build(name, fields, seed, lengths, task_seed):
    out = FIXTURES / name
    out.mkdir(parents=True, exist_ok=True)
    cfg = make_config(fields, seed)
    model = HookedTransformer(cfg)
    model.eval()
    randomize(model, seed)

    write_json(out / "config.json", config_json(cfg), indent=2)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})

    lines = random_task(cfg.d_vocab, cfg.d_vocab_out, lengths, task_seed)
    with open(out / "task.jsonl", "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")

    f32 = tl_logits(model, lines, float32_value)
    model64 = copy.deepcopy(model).to(torch.float64)  # also sets cfg.dtype, which LN / LNPre cast to
    assert model64.cfg.dtype == torch.float64
    f64 = tl_logits(model64, lines, float)
    write_json(out / "tl-logits.json", {
        "transformer_lens": importlib.metadata.version("transformer_lens"),
        "torch": torch.__version__,
        "float64": f64,
        "float32": f32,
    }, indent=None)
    gap = max(abs(a - b) for r64, r32 in zip(f64["all_logits"], f32["all_logits"])
              for x, y in zip(r64, r32) for a, b in zip(x, y))
    print(f"{name}: {len(state)} tensors, {len(lines)} examples, |float64 - float32| logits <= {gap:.2e}")
    return state


def main():
    for name, (fields, seed, lengths, task_seed) in MODELS.items():
        state = build(name, fields, seed, lengths, task_seed)
        if name == "tl-gelu-new":
            keys = [f"{k} {list(v.shape)} {str(v.dtype).replace('torch.', '')}" for k, v in state.items()]
    out = FIXTURES / "tl-unsupported"
    out.mkdir(parents=True, exist_ok=True)
    for name, fields in UNSUPPORTED.items():
        write_json(out / f"{name}.json", config_json(make_config(fields, seed=0)), indent=2)
    print("tl-gelu-new state_dict:\n  " + "\n  ".join(keys))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Compile ACDC's two tracr RASP programs and write them as TransformerLens checkpoints.

Run with the tracr environment (tracr-pypi 1.0.0, jax/jaxlib 0.4.13, dm-haiku 0.0.10,
numpy 1.24, safetensors):

    ~/tracr-venv/bin/python tests/make_tracr_models.py            # from the repo root

Writes, for NAME in {reverse, proportion}:
    data/tracr/NAME/config.json          HookedTransformerConfig fields (+ a "tracr" block)
    data/tracr/NAME/model.safetensors    float32 TransformerLens state_dict
    data/tracr/NAME/task.jsonl           ACDC's examples (clean/corrupted ids)
    tests/fixtures/tracr/NAME-expected.json  tracr's own logits, decoded outputs, l2 metric
and, for proportion only, the BOS-corrected variant (see below):
    data/tracr/proportion/task-bos.jsonl
    tests/fixtures/tracr/proportion-bos-expected.json

Everything reproduces ArthurConmy/Automatic-Circuit-Discovery (ACDC) at commit
bc99ace817974b5584b7ee203d596a8e2bbcd399, file acdc/tracr_task/utils.py ("utils.py:N"
below) and acdc/main.py ("main.py:N"):

* Programs (utils.py:29-55): reverse = Aggregate(Select(indices, length - indices - 1, EQ),
  tokens), length = SelectorWidth(Select(tokens, tokens, TRUE)), vocab {1,2,3},
  max_seq_len 5, compiler_bos "BOS"; proportion = lib.make_frac_prevs(tokens == "x"),
  vocab {w,x,y,z}, max_seq_len 5, compiler_bos "BOS".
* Conversion (utils.py:62-167): n_heads = num_heads, n_layers = num_layers,
  d_head = key_size, d_mlp = mlp_hidden_size, act_fn "relu", normalization None
  (layer_norm False), attention "bidirectional" (causal False), n_ctx / d_vocab / d_model
  from the embedding shapes, d_vocab_out = d_vocab - 2 (drop BOS and PAD);
  W_Q/W_K/W_V "d_model (n_heads d_head) -> n_heads d_model d_head", W_O
  "(n_heads d_head) d_model -> n_heads d_head d_model", MLP weights as they are,
  unembed.W_U = np.eye(d_model, d_vocab_out) (utils.py:108): the first d_vocab_out
  residual dimensions, whatever they hold. unembed.b_U is not in ACDC's state dict; its
  load_state_dict(strict=False) (utils.py:167) leaves TransformerLens's initial value,
  zeros (TL 1.6.1 Unembed), so we write zeros. tracr-pypi 1.0.0 fills every layer with
  both an attention and an MLP block (zeros where the program has none; assemble.py
  zeroes all "transformer" params first), so no tensor needs inventing: every block has
  both, as in ACDC's port (which would KeyError otherwise, utils.py:111-158).
  ACDC also sets use_attn_result / use_split_qkv_input (utils.py:92-93); these change
  hooks, not numerics, and are recorded under "acdc" in config.json.
* Reverse task (utils.py:260-277, main.py:247-253): num_examples 6, the 6 permutations
  of the encoded values [0,1,2] (tokens 1,2,3) in itertools.permutations order, each
  after BOS (id 3): [3, a, b, c]. Corrupted = data[get_perm(6)], a permutation of the
  EXAMPLES without fixed points (get_perm, utils.py:234-240).
* Proportion task (utils.py:318-343, main.py:255-261): num_examples 50, seq_len 4;
  data_tens = 100 distinct strings over "wxyz" (itertools.product order, picked by
  randperm(256)); validation = the first 50 (what ACDC's search uses, main.py:293),
  corrupted = validation data_tens[randperm(50)] (may have fixed points; ACDC does not
  exclude them); test = the next 50 with data_tens[randperm(50) + 50].
  !! ACDC's to_tens (utils.py:321-325) encodes a character c as ord(c) - ord("w") and
  prepends NO BOS. In tracr's encoding ({BOS:0, compiler_pad:1, w:2, x:3, y:4, z:5};
  ACDC's own comment "x == 3", utils.py:250, agrees) that makes ACDC's inputs 4-token
  sequences over {BOS, compiler_pad, w, x}: "w"->BOS, "x"->pad, "y"->w, "z"->x.
  task.jsonl reproduces exactly those ids (what ACDC ran and what its ground-truth
  circuit and ROC numbers come from). task-bos.jsonl is what ACDC presumably meant:
  [BOS] + the same strings encoded by tracr's input encoder, same pairing.
* Metric (utils.py:242-255, 290-295, 349-350): l2 = mean over positions 1.. and over
  output dims of (logits_run - logits_clean)^2; reverse uses all 3 output dims,
  proportion only output dim 0 (take_element_zero), which is tracr's numerical
  frac_prevs residual dimension (the other 3 of its 4 "logits" are indices:0..2).
* Random choices: ACDC seeds torch with 1234 (main.py:167, 192) and then
  get_tracr_model_input_and_tl_model builds HookedTransformer(cfg) (TL 1.6.1, pinned
  in ACDC's pyproject), whose init_weights draws normal_ for every W_ parameter from the
  CPU generator BEFORE get_perm / randperm run. The index lists below were obtained by
  replaying that exact sequence (torch.manual_seed(1234); HookedTransformer(cfg) with
  TL 1.6.1; then get_perm(6), or randperm(256), randperm(50), randperm(50)) under
  torch 2.15 on CPU; tests/check_tracr_with_transformer_lens.py --replay-acdc-rng
  re-derives them when a HookedTransformer is importable. They equal ACDC's run as long
  as torch's CPU normal_/randperm streams did not change since ACDC's torch (<2.0).
"""

from __future__ import annotations

import itertools
import json
import os
import sys

import numpy as np

import jax.numpy as jnp
from safetensors.numpy import save_file
from tracr.compiler import compiling
from tracr.compiler.lib import make_frac_prevs
from tracr.rasp import rasp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BOS = "BOS"
ACDC_COMMIT = "ArthurConmy/Automatic-Circuit-Discovery@bc99ace817974b5584b7ee203d596a8e2bbcd399"

# Replayed torch RNG draws (see module docstring, "Random choices").
REVERSE_PATCH_PERM = [5, 0, 4, 2, 3, 1]  # get_perm(6)
PROPORTION_PERM1_FIRST100 = [  # randperm(256)[:100]: which product("wxyz", repeat=4) strings
    211, 8, 186, 140, 1, 229, 32, 167, 18, 197, 249, 171, 250, 58, 169, 190, 253, 209, 198, 92,
    136, 3, 176, 148, 54, 106, 219, 122, 207, 111, 29, 134, 105, 228, 243, 150, 64, 205, 231, 233,
    220, 4, 21, 248, 159, 98, 73, 86, 6, 182, 25, 56, 175, 7, 75, 143, 115, 121, 185, 252,
    94, 223, 41, 91, 9, 161, 246, 47, 129, 217, 173, 102, 89, 156, 52, 145, 203, 204, 108, 210,
    49, 93, 10, 38, 216, 116, 23, 133, 141, 232, 31, 192, 107, 157, 84, 55, 153, 206, 12, 162]
PROPORTION_PERM2 = [  # randperm(50): validation corrupted = validation[PERM2]
    25, 9, 0, 36, 41, 42, 31, 26, 1, 47, 40, 49, 16, 17, 6, 32, 28, 23, 34, 20, 3, 21, 37, 7, 19,
    22, 4, 14, 44, 11, 24, 8, 29, 12, 27, 46, 43, 38, 45, 13, 30, 35, 18, 15, 33, 39, 48, 2, 5, 10]
PROPORTION_PERM3 = [  # randperm(50): test corrupted = data_tens[PERM3 + 50]
    49, 16, 14, 23, 7, 34, 20, 10, 22, 5, 37, 18, 42, 46, 48, 6, 38, 47, 35, 25, 41, 24, 4, 21, 19,
    15, 30, 40, 9, 36, 11, 2, 45, 12, 28, 17, 13, 29, 39, 43, 31, 1, 33, 32, 3, 44, 26, 0, 8, 27]


def compile_program(name):
    if name == "reverse":  # utils.py:29-44
        all_true_selector = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)
        length = rasp.SelectorWidth(all_true_selector)
        opp_index = length - rasp.indices - 1
        flip = rasp.Select(rasp.indices, opp_index, rasp.Comparison.EQ)
        reverse = rasp.Aggregate(flip, rasp.tokens)
        return compiling.compile_rasp_to_model(
            reverse, vocab={1, 2, 3}, max_seq_len=5, compiler_bos=BOS)
    if name == "proportion":  # utils.py:46-53
        return compiling.compile_rasp_to_model(
            make_frac_prevs(rasp.tokens == "x"), vocab={"w", "x", "y", "z"},
            max_seq_len=5, compiler_bos=BOS)
    raise ValueError(name)


def convert(model):
    """ACDC's port (utils.py:62-167), as a HookedTransformerConfig dict and a state_dict."""
    mc = model.model_config
    n_heads, n_layers, d_head, d_mlp = mc.num_heads, mc.num_layers, mc.key_size, mc.mlp_hidden_size
    n_ctx = model.params["pos_embed"]["embeddings"].shape[0]
    d_vocab, d_model = model.params["token_embed"]["embeddings"].shape
    d_vocab_out = d_vocab - 2
    cfg = dict(
        n_layers=int(n_layers), d_model=int(d_model), d_head=int(d_head), n_heads=int(n_heads),
        d_mlp=int(d_mlp), d_vocab=int(d_vocab), d_vocab_out=int(d_vocab_out), n_ctx=int(n_ctx),
        act_fn="relu",
        normalization_type="LN" if mc.layer_norm else None,
        attention_dir="causal" if mc.causal else "bidirectional",
        positional_embedding_type="standard",
        original_architecture="tracr",
        attn_only=False,
        dtype="float32",
    )
    assert cfg["normalization_type"] is None and cfg["attention_dir"] == "bidirectional"

    def a(x):
        return np.ascontiguousarray(np.asarray(x, dtype=np.float32))

    p = model.params
    sd = {
        "embed.W_E": a(p["token_embed"]["embeddings"]),
        "pos_embed.W_pos": a(p["pos_embed"]["embeddings"]),
        "unembed.W_U": a(np.eye(d_model, d_vocab_out)),
        "unembed.b_U": np.zeros(d_vocab_out, dtype=np.float32),  # TL's zero init; see docstring
    }
    for l in range(n_layers):
        t = f"transformer/layer_{l}"
        for tl_name, tr_name in (("K", "key"), ("Q", "query"), ("V", "value")):
            w = a(p[f"{t}/attn/{tr_name}"]["w"])  # [d_model, n_heads*d_head]
            b = a(p[f"{t}/attn/{tr_name}"]["b"])  # [n_heads*d_head]
            sd[f"blocks.{l}.attn.W_{tl_name}"] = a(
                w.reshape(d_model, n_heads, d_head).transpose(1, 0, 2))
            sd[f"blocks.{l}.attn.b_{tl_name}"] = a(b.reshape(n_heads, d_head))
        sd[f"blocks.{l}.attn.W_O"] = a(
            a(p[f"{t}/attn/linear"]["w"]).reshape(n_heads, d_head, d_model))
        sd[f"blocks.{l}.attn.b_O"] = a(p[f"{t}/attn/linear"]["b"])
        sd[f"blocks.{l}.mlp.W_in"] = a(p[f"{t}/mlp/linear_1"]["w"])
        sd[f"blocks.{l}.mlp.b_in"] = a(p[f"{t}/mlp/linear_1"]["b"])
        sd[f"blocks.{l}.mlp.W_out"] = a(p[f"{t}/mlp/linear_2"]["w"])
        sd[f"blocks.{l}.mlp.b_out"] = a(p[f"{t}/mlp/linear_2"]["b"])
    return cfg, sd


def tl_forward_numpy(cfg, sd, ids):
    """Independent float64 forward of the TL port (no LN, bidirectional), for a self-check."""
    x = sd["embed.W_E"][ids].astype(np.float64) + sd["pos_embed.W_pos"][: len(ids)]
    for l in range(cfg["n_layers"]):
        g = lambda n: sd[f"blocks.{l}.{n}"].astype(np.float64)
        q = np.einsum("pd,hde->hpe", x, g("attn.W_Q")) + g("attn.b_Q")[:, None]
        k = np.einsum("pd,hde->hpe", x, g("attn.W_K")) + g("attn.b_K")[:, None]
        v = np.einsum("pd,hde->hpe", x, g("attn.W_V")) + g("attn.b_V")[:, None]
        s = np.einsum("hqe,hke->hqk", q, k) / np.sqrt(cfg["d_head"])
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        z = np.einsum("hqk,hke->hqe", s, v)
        x = x + np.einsum("hqe,hed->qd", z, g("attn.W_O")) + g("attn.b_O")
        h = np.maximum(x @ g("mlp.W_in") + g("mlp.b_in"), 0)
        x = x + h @ g("mlp.W_out") + g("mlp.b_out")
    return x @ sd["unembed.W_U"].astype(np.float64) + sd["unembed.b_U"]


def tracr_logits(model, d_vocab_out, ids):
    """tracr's own forward on token ids: the final residual stream projected onto its first
    d_vocab_out dimensions (= the TL port's logits). model.apply(tokens) runs exactly
    model.forward(model.params, [input_encoder.encode(tokens)]); we call forward on the ids
    because ACDC's proportion inputs do not start with BOS, which encode() refuses."""
    out = model.forward(model.params, jnp.array([ids]))
    resid = np.asarray(out.transformer_output.output[0], dtype=np.float32)  # [pos, d_model]
    return resid[:, :d_vocab_out], np.asarray(out.unembedded_output[0])


def decode(model, name, ids, unembedded):
    """What model.apply(...).decoded gives: BOS at position 0, then the decoded outputs."""
    if name == "reverse":
        dec = model.output_encoder.decode([int(i) for i in unembedded.tolist()])
    else:  # numerical output: tracr decodes the projected value itself
        dec = [float(v) for v in np.asarray(unembedded, dtype=np.float32).tolist()]
    return [model.input_encoder.bos_token] + dec[1:]


def l2_metric(clean_logits, corr_logits, outputs):
    """DESIGN l2: mean over positions 1..P-1 and the output dims (restricted by outputs)."""
    c = np.asarray(clean_logits, np.float64)[1:]
    r = np.asarray(corr_logits, np.float64)[1:]
    if outputs is not None:
        c, r = c[:, outputs], r[:, outputs]
    return float(((r - c) ** 2).mean())


def make_examples(name, model):
    enc = model.input_encoder.encoding_map
    if name == "reverse":  # utils.py:260-277
        vals = [0, 1, 2]
        data = [[3] + list(perm) for perm in itertools.permutations(vals)]
        assert enc[BOS] == 3 and [enc[1], enc[2], enc[3]] == vals
        assert all(REVERSE_PATCH_PERM[i] != i for i in range(6))
        ex = [{"clean": data[i], "corrupted": data[REVERSE_PATCH_PERM[i]],
               "task": "tracr-reverse", "acdc_patch_index": REVERSE_PATCH_PERM[i]}
              for i in range(6)]
        return {"task.jsonl": (ex, None)}
    # proportion, utils.py:318-343
    all_things = list(itertools.product("wxyz", repeat=4))
    strings = ["".join(all_things[j]) for j in PROPORTION_PERM1_FIRST100]
    acdc_ids = [[ord(ch) - ord("w") for ch in s] for s in strings]  # to_tens, utils.py:321-325
    bos_ids = [[enc[BOS]] + [enc[ch] for ch in s] for s in strings]
    inv = {v: k for k, v in enc.items()}
    out = {}
    for fname, ids, task in (("task.jsonl", acdc_ids, "tracr-proportion"),
                             ("task-bos.jsonl", bos_ids, "tracr-proportion-bos")):
        ex = []
        for i in range(50):
            j = PROPORTION_PERM2[i]
            ex.append({"clean": ids[i], "corrupted": ids[j], "task": task, "outputs": [0],
                       "clean_string": strings[i], "corrupted_string": strings[j],
                       "clean_tokens": [inv[t] for t in ids[i]],
                       "corrupted_tokens": [inv[t] for t in ids[j]]})
        out[fname] = (ex, [0])
    return out


def main():
    os.chdir(ROOT)
    for name in ("reverse", "proportion"):
        model = compile_program(name)
        cfg, sd = convert(model)
        enc = {str(k): int(v) for k, v in model.input_encoder.encoding_map.items()}
        out_enc = getattr(model.output_encoder, "encoding_map", None)
        cfg["tracr"] = {
            "program": ("Aggregate(Select(indices, length - indices - 1, EQ), tokens)"
                        if name == "reverse" else "make_frac_prevs(tokens == 'x')"),
            "vocab": sorted(k for k in enc if k not in (BOS, "compiler_pad")),
            "max_seq_len": 5,
            "bos": BOS, "bos_id": enc[BOS], "pad": "compiler_pad", "pad_id": enc["compiler_pad"],
            "input_encoding": enc,
            "output_encoding": ({str(k): int(v) for k, v in out_enc.items()} if out_enc
                                else "numerical: output dim 0 (residual dim frac_prevs) is the value"),
            "residual_labels": [str(s) for s in model.residual_labels],
            "unembed": f"np.eye(d_model, d_vocab_out): residual dims 0..{cfg['d_vocab_out'] - 1} = "
                       + ", ".join(str(s) for s in model.residual_labels[: cfg["d_vocab_out"]]),
            "compiled_with": "tracr-pypi 1.0.0, jax 0.4.13",
        }
        cfg["acdc"] = {"source": ACDC_COMMIT + " acdc/tracr_task/utils.py",
                       "use_attn_result": True, "use_split_qkv_input": True,
                       "metric": "l2", "outputs": [0] if name == "proportion" else None}
        d = os.path.join("data", "tracr", name)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        save_file(sd, os.path.join(d, "model.safetensors"),
                  # one key only: safetensors writes metadata in hash order, so several
                  # keys would make the file differ byte-wise from run to run
                  metadata={"source": "tracr via ACDC's port, " + ACDC_COMMIT})

        # Sanity: model.apply on a BOS-led input equals forward on its ids and our own forward.
        probe = [BOS, 1, 2, 3] if name == "reverse" else [BOS, "x", "w", "w", "x"]
        app = model.apply(probe)
        ids = model.input_encoder.encode(probe)
        lg, _ = tracr_logits(model, cfg["d_vocab_out"], ids)
        assert np.array_equal(np.asarray(app.transformer_output[0])[:, : cfg["d_vocab_out"]], lg)
        print(name, "probe", probe, "->", app.decoded)

        os.makedirs(os.path.join("tests", "fixtures", "tracr"), exist_ok=True)
        for fname, (examples, outputs) in make_examples(name, model).items():
            with open(os.path.join(d, fname), "w") as f:
                for e in examples:
                    f.write(json.dumps(e) + "\n")
            rows, per_ex, max_np = [], [], 0.0
            for e in examples:
                row = {"clean": e["clean"], "corrupted": e["corrupted"]}
                for which in ("clean", "corrupted"):
                    lg, unemb = tracr_logits(model, cfg["d_vocab_out"], e[which])
                    max_np = max(max_np, float(np.abs(tl_forward_numpy(cfg, sd, e[which]) - lg).max()))
                    row[f"{which}_logits"] = [[float(v) for v in r] for r in lg]
                    row[f"{which}_decoded"] = decode(model, name, e[which], unemb)
                row["l2"] = l2_metric(row["clean_logits"], row["corrupted_logits"], outputs)
                per_ex.append(row["l2"])
                rows.append(row)
            assert max_np < 1e-5, max_np
            stem = name if fname == "task.jsonl" else name + "-bos"
            fixture = {
                "name": f"tracr-{stem}",
                "task_file": os.path.join(d, fname),
                "model_dir": d,
                "logits": "tracr forward's final residual stream [:, :d_vocab_out] at every "
                          "position (= TL port logits), float32 values written as float64",
                "metric": "l2",
                "position_mode": "all",
                "outputs": outputs,
                "l2_definition": "per example: mean over positions 1..P-1 and output dims "
                                 "(restricted by outputs) of (corrupted - clean)^2; then mean "
                                 "over examples",
                "l2_mean": float(np.mean(per_ex)),
                "n_examples": len(rows),
                "examples": rows,
            }
            with open(os.path.join("tests", "fixtures", "tracr", f"{stem}-expected.json"), "w") as f:
                json.dump(fixture, f, indent=1)
                f.write("\n")
            print(f"{stem}: {len(rows)} examples, l2 mean {fixture['l2_mean']:.6g}, "
                  f"numpy-TL forward vs tracr max diff {max_np:.2e}")
        print(name, {k: v for k, v in cfg.items() if k not in ("tracr", "acdc")})
    return 0


if __name__ == "__main__":
    sys.exit(main())

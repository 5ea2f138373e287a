#!/usr/bin/env python3
"""Reference fixtures for circuitry's tests.

Run with a Python that has torch and numpy (no `transformers` needed): Debian's
/usr/bin/python3 where it has torch, else the ~/peers venv (/work/scratch/peers/bin/python):

    /usr/bin/python3 tests/make_fixtures.py              # every fixture
    /usr/bin/python3 tests/make_fixtures.py hf-qwen3     # only the named fixture(s)

With fixture names (directory names: gpt2-tiny, gpt2-tiny-f16, gpt2-tiny-bf16, gpt2-small3,
attn-only, tl-*, hf-*) it writes only those directories' files and leaves every other
file alone (each fixture comes from its own seeds or files, so the result is the same as
in a full run); without, it writes them all.

It builds a few tiny random GPT-2 style models, writes them in the Hugging Face
layout (config.json + model.safetensors), writes a task file for each, and computes
with an independent float64 PyTorch implementation of /work/shared/DESIGN.md
section 2 the numbers the C++ tests compare against (expected.json).  It also reads
the TransformerLens checkpoints tests/make_tl_fixtures.py writes (fixtures/tl-*/:
HookedTransformerConfig fields + the state_dict), checks its logits against
TransformerLens's own, and writes their expected.json the same way; and so for the
Hugging Face Pythia (GPT-NeoX) and Llama / Qwen2 / Mistral / Qwen3 checkpoints that
tests/make_hf_family_fixtures.py writes (fixtures/hf-*/, checked against transformers'
float64_strict logits: rotary, RMSNorm, gated MLPs, grouped-query attention, parallel
residual, Qwen3's QK norm).  The output is deterministic (fixed seeds); see
tests/fixtures/README.md and tests/fixtures/hf-family-README.md for the file contents.

The code is meant to be read.  In order:
  1. the models (GPT-2 in the HF layout, TransformerLens checkpoints, HF GPT-NeoX and
     Llama-family checkpoints, Qwen3's QK norm included; their pieces behind one
     interface, and a plain forward),
  2. the graph (nodes, ports, edges with their DESIGN.md names),
  3. the forward pass as an explicit residual decomposition, with overrides for
     edges, nodes and ports, and a zero "delta" per port for gradients,
  4. metrics,
  5. scores: eap, eap-ig, clean-corrupted, exact,
  6. path patching (sender -> receiver) and path sets (treeified model),
  7. file writers (safetensors by hand, json),
  8. the fixtures and the self-checks (section 8 ends with the TransformerLens and
     Hugging Face ones).
Every reference run handles one example at a time (batch 1, no padding); metrics and
scores are means over examples.
"""

import json
import math
import struct
import sys
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)  # the machine is shared; everything here is tiny anyway
torch.set_default_dtype(torch.float64)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
METRICS = ["logit_diff", "prob_diff", "kl", "loss"]
SET_METRICS = METRICS + ["logit_diff_max"]  # the answer-set fixture also checks the docstring metric
METHODS = ["eap", "eap-ig", "clean-corrupted", "exact"]
IG_STEPS = 5


# ----------------------------------------------------------------------------
# 1. The models, computed in float64
# ----------------------------------------------------------------------------
#
# Three checkpoint layouts (DESIGN.md section 3), one interface.  Everything below
# section 1 sees a model only through these members (the architecture description):
#   n_layer, n_head, d_model, d_head, attn_only, causal
#   n_kv_head                         key/value heads (< n_head: grouped-query attention)
#   rotary_dim, rope_theta            rotary on the first rotary_dim dims of q and k (0: none)
#   parallel                          attention and MLP read the same residual (GPT-NeoX)
#   gated                             MLP = down(act(x W_gate + b_gate) * (x W_in + b_in))
#   embed(tokens)                     the `input` node, [P] -> [P, D]
#   ln1(l, x), ln2(l, x), ln_final(x) the norms (layer norm, LNPre, RMSNorm or none)
#   head_weights(l, h)                W_Q, b_Q, W_K, b_K, W_V, b_V ([D, dh] / [dh]) and W_O [dh, D];
#                                     under grouped-query attention K and V are the group's
#   q_norm(l, q), k_norm(l, k)        the QK norm of each head's q and k ([..., dh]), after the
#                                     bias and before rotary (Qwen3: RMSNorm over dh; else q, k)
#   b_O(l)                            attention output bias [D] (a constant of the residual)
#   mlp_weights(l)                    W_in [D, F], b_in, W_out [F, D], b_out
#   gate_weights(l)                   W_gate [D, F], b_gate (gated MLPs only)
#   act(x)                            the MLP activation
#   W_U [D, V], b_U [V] or None       the unembedding
# Biases a checkpoint does not have are zero vectors (adding them is exact).

class Model:
    """GPT-2 in the Hugging Face layout: config plus weights.  Weights are keyed by HF
    names WITHOUT the `transformer.` prefix and held as float64 tensors (exact copies
    of the stored float32 / float16 / bfloat16 values)."""

    causal = True
    b_U = None
    rotary_dim, parallel, gated = 0, False, False

    def __init__(self, config, weights):
        self.config = config
        self.n_layer = config["n_layer"]
        self.n_head = self.n_kv_head = config["n_head"]
        self.d_model = config["n_embd"]
        self.d_head = self.d_model // self.n_head
        self.eps = config["layer_norm_epsilon"]
        self.attn_only = bool(config.get("attn_only", False))
        self.w = {k: torch.tensor(np.asarray(v, dtype=np.float64)) for k, v in weights.items()}
        tied = config.get("tie_word_embeddings", True)
        self.W_U = (self.w["wte.weight"] if tied else self.w["lm_head.weight"]).T  # [D, V]

    def __getitem__(self, name):
        return self.w[name]

    def embed(self, tokens):
        """wte[tok] + wpe[pos]."""
        positions = torch.arange(len(tokens))
        return self["wte.weight"][tokens] + self["wpe.weight"][positions]

    def ln1(self, l, x):
        return layer_norm(x, self[f"h.{l}.ln_1.weight"], self[f"h.{l}.ln_1.bias"], self.eps)

    def ln2(self, l, x):
        return layer_norm(x, self[f"h.{l}.ln_2.weight"], self[f"h.{l}.ln_2.bias"], self.eps)

    def ln_final(self, x):
        return layer_norm(x, self["ln_f.weight"], self["ln_f.bias"], self.eps)

    def head_weights(self, l, h):
        """c_attn (Conv1D, y = x W + b) has columns q | k | v, each split into heads of
        d_head columns; head h's rows of c_proj.weight map its z back to the residual."""
        D, dh = self.d_model, self.d_head
        W = self[f"h.{l}.attn.c_attn.weight"]  # [D, 3D]
        b = self[f"h.{l}.attn.c_attn.bias"]    # [3D]

        def cols(part):  # part 0 = q, 1 = k, 2 = v
            return slice(part * D + h * dh, part * D + (h + 1) * dh)
        W_O = self[f"h.{l}.attn.c_proj.weight"][h * dh:(h + 1) * dh, :]
        return W[:, cols(0)], b[cols(0)], W[:, cols(1)], b[cols(1)], W[:, cols(2)], b[cols(2)], W_O

    def b_O(self, l):
        return self[f"h.{l}.attn.c_proj.bias"]

    def q_norm(self, l, q):  # no QK norm
        return q

    def k_norm(self, l, k):
        return k

    def mlp_weights(self, l):
        p = f"h.{l}.mlp."
        return self[p + "c_fc.weight"], self[p + "c_fc.bias"], self[p + "c_proj.weight"], self[p + "c_proj.bias"]

    @staticmethod
    def act(x):
        return gelu_new(x)


# The TransformerLens configurations the reference computes (DESIGN.md section 3);
# anything else is refused, as circuitry must refuse it.
TL_NORMS = {"LN", "LNPre", None}
TL_ACTS = {"gelu_new", "gelu", "relu"}


class TLModel:
    """A TransformerLens checkpoint: HookedTransformerConfig fields plus the state_dict
    (`embed.W_E`, `blocks.{l}.attn.W_Q` [H, D, dh], ...).  The state_dict's buffers
    (`blocks.{l}.attn.mask`, `attn.IGNORE`) are not weights: the mask is rebuilt from
    attention_dir (TransformerLens keeps a lower-triangular mask even for bidirectional
    models and never applies it there), IGNORE is TransformerLens's -inf."""

    rotary_dim, parallel, gated = 0, False, False

    def __init__(self, config, weights):
        refuse = [f"{k} {config.get(k)!r}" for k, ok in (
            ("normalization_type", config.get("normalization_type") in TL_NORMS),
            ("act_fn", config.get("act_fn") in TL_ACTS or config.get("attn_only")),
            ("positional_embedding_type", config.get("positional_embedding_type", "standard") == "standard"),
            ("attention_dir", config.get("attention_dir", "causal") in ("causal", "bidirectional")),
            ("parallel_attn_mlp", not config.get("parallel_attn_mlp", False)),
            ("gated_mlp", not config.get("gated_mlp", False)),
            ("n_key_value_heads", config.get("n_key_value_heads") is None),
            ("attn_scale", config.get("use_attn_scale", True)
             and math.isclose(config.get("attn_scale", math.sqrt(config["d_head"])), math.sqrt(config["d_head"]))),
        ) if not ok]
        assert not refuse, f"unsupported TransformerLens config: {', '.join(refuse)}"
        self.config = config
        self.n_layer = config["n_layers"]
        self.n_head = self.n_kv_head = config["n_heads"]
        self.d_model = config["d_model"]
        self.d_head = config["d_head"]  # need not be d_model / n_heads
        self.eps = config["eps"]
        self.attn_only = bool(config.get("attn_only", False))
        self.causal = config.get("attention_dir", "causal") == "causal"
        self.norm = config.get("normalization_type")
        self.w = {k: torch.tensor(np.asarray(v, dtype=np.float64)) for k, v in weights.items()
                  if not k.endswith((".attn.mask", ".attn.IGNORE"))}
        self.W_U = self["unembed.W_U"]  # [D, d_vocab_out]
        self.b_U = self["unembed.b_U"]  # [d_vocab_out]

    def __getitem__(self, name):
        return self.w[name]

    def embed(self, tokens):
        """W_E[tok] + W_pos[pos] (no W_pos: token embedding only)."""
        x = self["embed.W_E"][tokens]
        if "pos_embed.W_pos" in self.w:
            x = x + self["pos_embed.W_pos"][torch.arange(len(tokens))]
        return x

    def _norm(self, prefix, x):
        if self.norm == "LN":
            return layer_norm(x, self[prefix + ".w"], self[prefix + ".b"], self.eps)
        if self.norm == "LNPre":  # normalisation only, no weight or bias
            return layer_norm_pre(x, self.eps)
        return x  # normalization_type None

    def ln1(self, l, x):
        return self._norm(f"blocks.{l}.ln1", x)

    def ln2(self, l, x):
        return self._norm(f"blocks.{l}.ln2", x)

    def ln_final(self, x):
        return self._norm("ln_final", x)

    def head_weights(self, l, h):
        p = f"blocks.{l}.attn."
        return tuple(self[p + n][h] for n in ("W_Q", "b_Q", "W_K", "b_K", "W_V", "b_V", "W_O"))

    def b_O(self, l):
        return self[f"blocks.{l}.attn.b_O"]

    def q_norm(self, l, q):  # no QK norm
        return q

    def k_norm(self, l, k):
        return k

    def mlp_weights(self, l):
        p = f"blocks.{l}.mlp."
        return self[p + "W_in"], self[p + "b_in"], self[p + "W_out"], self[p + "b_out"]

    def act(self, x):
        return {"gelu_new": gelu_new, "gelu": gelu, "relu": torch.relu}[self.config["act_fn"]](x)


# The Hugging Face families the reference computes (tests/fixtures/hf-family-README.md);
# anything else is refused, as circuitry must refuse it.
HF_FAMILIES = {"gpt_neox": "gpt_neox.", "llama": "model.", "qwen2": "model.", "mistral": "model.",
               "qwen3": "model."}
HF_ACTS = {"gelu", "gelu_new", "relu", "silu"}


def hf_architecture(config):
    """The architecture description of a Hugging Face GPT-NeoX (Pythia), Llama, Qwen2,
    Mistral or Qwen3 config.json, in the transformers 5 key names or the 4.x ones (rope_theta,
    rope_scaling, rotary_pct, rotary_emb_base).  Refuses what the reference does not compute."""
    kind = config.get("model_type")
    assert kind in HF_FAMILIES, f"unsupported Hugging Face model_type {kind!r}"
    neox = kind == "gpt_neox"
    H = config["num_attention_heads"]
    KV = H if neox else config.get("num_key_value_heads") or H
    D = config["hidden_size"]
    d_head = config.get("head_dim") or D // H
    rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    theta = rope.get("rope_theta", config.get("rope_theta", config.get("rotary_emb_base", 10000.0)))
    partial = rope.get("partial_rotary_factor", config.get("rotary_pct", 0.25) if neox else 1.0)
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    window = config.get("sliding_window") if config.get("use_sliding_window", True) else None
    refuse = [what for what, ok in (
        (f"rope_type {rope_type!r}", rope_type == "default"),
        (f"num_key_value_heads {KV} does not divide num_attention_heads {H}", H % KV == 0),
        (f"sliding_window {window}", window is None or window >= config["max_position_embeddings"]),
        (f"hidden_act {config.get('hidden_act')!r}", config.get("hidden_act") in HF_ACTS),
    ) if not ok]
    assert not refuse, f"unsupported {kind} config: {', '.join(refuse)}"
    return {
        "family": "gpt_neox" if neox else "llama",  # tensor names; qwen2, mistral and qwen3 are llama's
        "qk_norm": kind == "qwen3",  # RMSNorm over head_dim of each head's q and k, before rotary
        "n_layer": config["num_hidden_layers"], "n_head": H, "n_kv_head": KV, "d_model": D, "d_head": d_head,
        "rotary_dim": int(d_head * partial), "rope_theta": float(theta),
        "parallel": neox and config.get("use_parallel_residual", True),
        "norm": "layer_norm" if neox else "rms_norm",
        "eps": config["layer_norm_eps"] if neox else config["rms_norm_eps"],
        "act": config["hidden_act"], "gated": not neox,
        "tied": bool(config.get("tie_word_embeddings", False)),
    }


class HFModel:
    """A Hugging Face GPT-NeoX (Pythia), Llama, Qwen2, Mistral or Qwen3 checkpoint: config.json
    plus model.safetensors (PyTorch Linear weights [out, in], y = x W^T + b).  No position
    embedding tensor: positions enter through rotary inside each head.

    GPT-NeoX: fused attention.query_key_value [3D, D] grouped per head (head h's q, k, v are
    rows h*3dh + [0, dh), [dh, 2dh), [2dh, 3dh)), attention.dense = W_O with a bias, LayerNorms,
    dense_h_to_4h / dense_4h_to_h with biases, parallel or sequential residual, embed_out.
    Llama family: q_proj [H dh, D], k_proj / v_proj [KV dh, D] (query head h reads KV head
    h // (H / KV)), o_proj [D, H dh], RMSNorms, gated MLP down(silu(gate x) * up x),
    lm_head or (tied) embed_tokens.  Qwen3 adds the QK norm: self_attn.q_norm / k_norm [dh],
    RMSNorms (eps rms_norm_eps) over each head's own q and k, after q_proj / k_proj and before
    rotary, one weight shared by all heads of the layer (v is not normalised).  A bias the file
    does not hold is zero."""

    causal, attn_only, b_U = True, False, None

    def __init__(self, config, weights):
        self.config = config
        self.arch = hf_architecture(config)
        for key in ("n_layer", "n_head", "n_kv_head", "d_model", "d_head", "rotary_dim", "rope_theta",
                    "parallel", "gated", "eps"):
            setattr(self, key, self.arch[key])
        prefix = HF_FAMILIES[config["model_type"]]
        self.w = {k[len(prefix):] if k.startswith(prefix) else k: torch.tensor(np.asarray(v, dtype=np.float64))
                  for k, v in weights.items()}
        self.used = set()  # the names read, so a test can check that every tensor was used
        neox = self.arch["family"] == "gpt_neox"
        self.names = {  # role -> name (per layer with {l})
            "embed": "embed_in.weight" if neox else "embed_tokens.weight",
            "ln1": "layers.{l}.input_layernorm", "ln2": "layers.{l}.post_attention_layernorm",
            "ln_final": "final_layer_norm" if neox else "norm",
            "unembed": "embed_out.weight" if neox else "lm_head.weight",
        }
        self.W_U = (self[self.names["embed"]] if self.arch["tied"] else self[self.names["unembed"]]).T  # [D, V]

    def __getitem__(self, name):
        self.used.add(name)
        return self.w[name]

    def bias(self, name, size):
        return self[name] if name in self.w else torch.zeros(size)

    def embed(self, tokens):
        """The token embedding only."""
        return self[self.names["embed"]][tokens]

    def _norm(self, prefix, x):
        if self.arch["norm"] == "layer_norm":
            return layer_norm(x, self[prefix + ".weight"], self[prefix + ".bias"], self.eps)
        return rms_norm(x, self[prefix + ".weight"], self.eps)

    def ln1(self, l, x):
        return self._norm(self.names["ln1"].format(l=l), x)

    def ln2(self, l, x):
        return self._norm(self.names["ln2"].format(l=l), x)

    def ln_final(self, x):
        return self._norm(self.names["ln_final"], x)

    def head_weights(self, l, h):
        dh = self.d_head
        if self.arch["family"] == "gpt_neox":
            p = f"layers.{l}.attention."
            W, b = self[p + "query_key_value.weight"], self.bias(p + "query_key_value.bias", 3 * self.n_head * dh)

            def rows(part):  # part 0 = q, 1 = k, 2 = v, inside head h's block of 3 dh rows
                return slice((3 * h + part) * dh, (3 * h + part + 1) * dh)
            W_O = self[p + "dense.weight"][:, h * dh:(h + 1) * dh].T
            return W[rows(0)].T, b[rows(0)], W[rows(1)].T, b[rows(1)], W[rows(2)].T, b[rows(2)], W_O
        p = f"layers.{l}.self_attn."
        g = h // (self.n_head // self.n_kv_head)  # the KV head of query head h
        q, kv = slice(h * dh, (h + 1) * dh), slice(g * dh, (g + 1) * dh)
        (W_Q, b_Q), (W_K, b_K), (W_V, b_V) = (self._linear(p + n) for n in ("q_proj", "k_proj", "v_proj"))
        W_O = self[p + "o_proj.weight"][:, q].T
        return W_Q[:, q], b_Q[q], W_K[:, kv], b_K[kv], W_V[:, kv], b_V[kv], W_O

    def q_norm(self, l, q):
        return rms_norm(q, self[f"layers.{l}.self_attn.q_norm.weight"], self.eps) if self.arch["qk_norm"] else q

    def k_norm(self, l, k):
        return rms_norm(k, self[f"layers.{l}.self_attn.k_norm.weight"], self.eps) if self.arch["qk_norm"] else k

    def b_O(self, l):
        neox = self.arch["family"] == "gpt_neox"
        return self.bias(f"layers.{l}.attention.dense.bias" if neox else f"layers.{l}.self_attn.o_proj.bias",
                         self.d_model)

    def _linear(self, name):  # -> W [in, out], b [out]
        W = self[name + ".weight"]
        return W.T, self.bias(name + ".bias", W.shape[0])

    def mlp_weights(self, l):
        if self.arch["family"] == "gpt_neox":
            return (*self._linear(f"layers.{l}.mlp.dense_h_to_4h"), *self._linear(f"layers.{l}.mlp.dense_4h_to_h"))
        return (*self._linear(f"layers.{l}.mlp.up_proj"), *self._linear(f"layers.{l}.mlp.down_proj"))

    def gate_weights(self, l):
        return self._linear(f"layers.{l}.mlp.gate_proj")

    def act(self, x):
        return {"gelu": gelu, "gelu_new": gelu_new, "relu": torch.relu,
                "silu": torch.nn.functional.silu}[self.arch["act"]](x)


def layer_norm_pre(x, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)  # biased variance, as torch/HF/TL
    return (x - mean) / torch.sqrt(var + eps)


def layer_norm(x, weight, bias, eps):
    return layer_norm_pre(x, eps) * weight + bias


def rms_norm(x, weight, eps):
    """RMSNorm: weight * x / sqrt(mean(x^2) + eps) (no mean subtraction, no bias)."""
    return weight * (x / torch.sqrt((x ** 2).mean(-1, keepdim=True) + eps))


def gelu_new(x):
    """GPT-2's tanh approximation."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu(x):
    """The exact GELU, x Phi(x)."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def embed(model, tokens):
    """The `input` node: token embedding + learned position embedding.  [P] -> [P, D]."""
    return model.embed(tokens)


def attention_pattern(model, q, k):
    """softmax(q k^T / sqrt(d_head)), causal or not.  q, k: [..., P, dh] -> [..., P, P]."""
    P = q.shape[-2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(model.d_head)
    if model.causal:
        causal = torch.ones(P, P, dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    return torch.softmax(scores, dim=-1)


def rotary(model, x):
    """Rotate-half rotary embedding of q or k, x [..., P, dh], at positions 0..P-1 (the
    token index): the first rotary_dim dims form pairs (i, i + rotary_dim/2) turned by the
    angle p theta^(-2i/rotary_dim); the other dims pass through.  No rotary: x itself."""
    rot = model.rotary_dim
    if rot == 0:
        return x
    half = rot // 2
    inv_freq = 1.0 / model.rope_theta ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot)  # [half]
    angle = torch.arange(x.shape[-2], dtype=torch.float64)[:, None] * inv_freq  # [P, half]
    cos, sin = angle.cos(), angle.sin()
    x1, x2, rest = x[..., :half], x[..., half:rot], x[..., rot:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)


def head_output(model, l, h, q_in, k_in, v_in):
    """Head h of layer l.  It reads its own residual copy for each of q, k, v
    ([P, D] each, each through its own ln1) and returns z_h @ W_O[h] ([P, D]),
    WITHOUT the attention output bias (a constant of the residual).  Under grouped-query
    attention the head computes its own k and v with its group's weights, from its own
    k and v inputs; the QK norm (Qwen3) and then rotary turn q and k after the bias."""
    W_Q, b_Q, W_K, b_K, W_V, b_V, W_O = model.head_weights(l, h)
    q = rotary(model, model.q_norm(l, model.ln1(l, q_in) @ W_Q + b_Q))  # [P, dh]
    k = rotary(model, model.k_norm(l, model.ln1(l, k_in) @ W_K + b_K))
    v = model.ln1(l, v_in) @ W_V + b_V
    z = attention_pattern(model, q, k) @ v  # [P, dh]
    return z @ W_O  # [P, D]


def mlp_output(model, l, x):
    """MLP l from its input residual x ([P, D], before ln2), including its output bias.
    Gated (Llama family): down(act(gate(x)) * up(x)), W_in being up."""
    W_in, b_in, W_out, b_out = model.mlp_weights(l)
    if model.gated:
        W_gate, b_gate = model.gate_weights(l)
        a = model.ln2(l, x)
        hidden = model.act(a @ W_gate + b_gate) * (a @ W_in + b_in)
    else:
        hidden = model.act(model.ln2(l, x) @ W_in + b_in)
    return hidden @ W_out + b_out


def unembed(model, x):
    """`logits` port: the final norm, then W_U (+ b_U).  [P, D] -> [P, V]."""
    logits = model.ln_final(x) @ model.W_U
    return logits if model.b_U is None else logits + model.b_U


def plain_forward(model, tokens):
    """An ordinary forward (all heads of a layer at once, keys and values once per KV head
    and shared by its group, the head outputs summed by one matrix product), used to
    check that the residual decomposition below computes the same logits and, for the
    Hugging Face checkpoints, that the reference reproduces transformers."""
    x = model.embed(tokens)
    group = model.n_head // model.n_kv_head  # query heads per KV head
    for l in range(model.n_layer):
        a = model.ln1(l, x)
        weights = [model.head_weights(l, h) for h in range(model.n_head)]
        q = torch.stack([a @ w[0] + w[1] for w in weights])  # [H, P, dh]
        k, v = (torch.stack([a @ w[i] + w[i + 1] for w in weights[::group]])  # [KV, P, dh]
                .repeat_interleave(group, dim=0) for i in (2, 4))  # [H, P, dh]
        q, k = model.q_norm(l, q), model.k_norm(l, k)  # the QK norm (Qwen3), per head and position
        z = attention_pattern(model, rotary(model, q), rotary(model, k)) @ v  # [H, P, dh]
        W_O = torch.cat([w[6] for w in weights])  # [H dh, D]
        if model.parallel:  # attention and MLP both read the layer's input
            x = x + torch.cat(list(z), dim=-1) @ W_O + model.b_O(l) + mlp_output(model, l, x)
            continue
        x = x + torch.cat(list(z), dim=-1) @ W_O + model.b_O(l)
        if not model.attn_only:
            x = x + mlp_output(model, l, x)
    return unembed(model, x)


# ----------------------------------------------------------------------------
# 2. The graph
# ----------------------------------------------------------------------------

class Graph:
    """Upstream nodes, downstream ports and edges, in forward order.

    nodes:    "input", "a{l}.h{h}", "m{l}"
    ports:    "a{l}.h{h}<q>", "<k>", "<v>", "m{l}", "logits"
    upstream: port -> the nodes whose outputs sum into it (edges u->port)
    owner:    port -> the node (or "logits") that reads it
    ports_of: node -> its ports
    edges:    (u, port) pairs, ordered by port then by u
    A parallel block's m{l} reads the layer's input, so a{l}.h* -> m{l} are no edges
    (its ports keep their place after the heads' ports, as its node after the heads).
    """

    def __init__(self, model):
        self.nodes, self.ports = ["input"], []
        self.upstream, self.owner, self.ports_of, self.layer_of_port = {}, {}, {}, {}
        before = ["input"]

        def add_port(port, owner, n_attn_biases, upstream=None):
            self.ports.append(port)
            self.upstream[port] = list(before if upstream is None else upstream)
            self.owner[port] = owner
            self.ports_of.setdefault(owner, []).append(port)
            self.layer_of_port[port] = n_attn_biases  # how many attention output biases it sees

        for l in range(model.n_layer):
            layer_input = list(before)
            heads = [f"a{l}.h{h}" for h in range(model.n_head)]
            for head in heads:
                for c in "qkv":
                    add_port(f"{head}<{c}>", head, l)
            self.nodes += heads
            before += heads
            if not model.attn_only:
                if model.parallel:  # m{l} reads the layer's input: no a{l}.h* -> m{l}, nor b_O of layer l
                    add_port(f"m{l}", f"m{l}", l, upstream=layer_input)
                else:
                    add_port(f"m{l}", f"m{l}", l + 1)
                self.nodes.append(f"m{l}")
                before.append(f"m{l}")
        add_port("logits", "logits", model.n_layer)
        self.edges = [(u, p) for p in self.ports for u in self.upstream[p]]
        self.edge_names = [edge_name(u, p) for u, p in self.edges]
        self.edge_of_name = {edge_name(u, p): (u, p) for u, p in self.edges}


def edge_name(u, p):
    return f"{u}->{p}"


def is_head(node):
    return node.startswith("a")


def is_mlp(node):
    return node.startswith("m")


def layer_of(node):
    return int(node[1:].split(".")[0])


def residual_bias(model, graph, port):
    """Sum of the attention output bias (c_proj.bias, b_O, attention.dense.bias) of every
    attention layer before `port` (the constant part of its residual stream; a parallel
    block's m{l} does not see layer l's).  [D]"""
    bias = torch.zeros(model.d_model)
    for l in range(graph.layer_of_port[port]):
        bias = bias + model.b_O(l)
    return bias


def node_from_ports(model, node, port_inputs):
    """Compute a head's or an MLP's output from its own port inputs."""
    l = layer_of(node)
    if is_head(node):
        h = int(node.split(".h")[1])
        return head_output(model, l, h, port_inputs[f"{node}<q>"], port_inputs[f"{node}<k>"],
                           port_inputs[f"{node}<v>"])
    return mlp_output(model, l, port_inputs[node])


# ----------------------------------------------------------------------------
# 3. The forward pass as a residual decomposition
# ----------------------------------------------------------------------------

def run(model, graph, tokens, edge_values=None, node_values=None, port_values=None, port_deltas=None):
    """One example's forward pass, built edge by edge.

    Each port's input is   residual_bias(port) + sum over u in upstream[port] of
    what edge u->port carries, which is u's output in THIS run unless overridden.

    edge_values: {(u, port): [P, D]}  what the edge carries instead (edge patching: out_u(x'))
    node_values: {u: [P, D]}          replaces u's output (frozen nodes; EAP-IG's input)
    port_values: {port: [P, D]}       replaces the port's whole input (path patching run 2)
    port_deltas: {port: [P, D]}       added to the port's input; zero tensors with
                                      requires_grad=True make d M / d in_port available
    Returns (logits [P, V], outputs {node: [P, D]}, inputs {port: [P, D]}).
    """
    edge_values, node_values = edge_values or {}, node_values or {}
    port_values, port_deltas = port_values or {}, port_deltas or {}
    outputs, inputs = {}, {}

    def read_port(port):
        if port in port_values:
            x = port_values[port]
        else:
            x = residual_bias(model, graph, port)
            for u in graph.upstream[port]:
                x = x + edge_values.get((u, port), outputs[u])
        if port in port_deltas:
            x = x + port_deltas[port]
        inputs[port] = x
        return x

    def compute(node):
        port_inputs = {port: read_port(port) for port in graph.ports_of[node]}
        outputs[node] = node_values[node] if node in node_values else node_from_ports(model, node, port_inputs)

    outputs["input"] = node_values.get("input", embed(model, tokens))
    for node in graph.nodes[1:]:  # forward order: heads of layer l, then m{l}, ...
        compute(node)
    logits = unembed(model, read_port("logits"))
    return logits, outputs, inputs


# ----------------------------------------------------------------------------
# 4. Metrics (per example, at the last position; M is the mean over examples)
# ----------------------------------------------------------------------------

class Example:
    """One task line plus its clean and corrupted unpatched runs."""

    def __init__(self, model, graph, line):
        self.clean = torch.tensor(line["clean"])
        self.corrupted = torch.tensor(line["corrupted"])
        self.answer, self.wrong = line["answer"], line["wrong"]
        logits, self.clean_out, self.clean_in = run(model, graph, self.clean)
        self.clean_logits = logits[-1].detach()
        self.clean_logp = torch.log_softmax(self.clean_logits, -1)
        logits, self.corr_out, self.corr_in = run(model, graph, self.corrupted)
        self.corr_logits = logits[-1].detach()


def token_set(value):
    """A task line's answer or wrong field (one id or a non-empty list) as a list of ids."""
    ids = value if isinstance(value, list) else [value]
    assert len(ids) > 0
    return ids


def metric_value(name, last_logits, ex):
    """Per-example metric from the run's last-position logits [V], with the answer set A
    and the wrong set W (DESIGN.md section 2; with one id each, the single-token metrics)."""
    logp = torch.log_softmax(last_logits, -1)
    A, W = token_set(ex.answer), token_set(ex.wrong)
    if name == "logit_diff":
        return last_logits[A].mean() - last_logits[W].mean()
    if name == "logit_diff_max":
        return last_logits[A].mean() - last_logits[W].max()
    if name == "prob_diff":
        return logp[A].exp().sum() - logp[W].exp().sum()
    if name == "kl":  # KL(p_clean || p_run)
        return (ex.clean_logp.exp() * (ex.clean_logp - logp)).sum()
    if name == "loss":
        return -torch.logsumexp(logp[A], 0)
    raise ValueError(name)


def mean_metrics(task, last_logits_of, metrics=METRICS):
    """{metric: M} where M = mean over examples; last_logits_of(ex) -> [V]."""
    totals = {name: 0.0 for name in metrics}
    for ex in task:
        last = last_logits_of(ex)
        for name in metrics:
            totals[name] += metric_value(name, last, ex).item() / len(task)
    return totals


def patched_last_logits(model, graph, ex, patched_edges):
    """Clean run with the given edges patched: each carries out_u(x') instead of u's
    output in this run; the change propagates downstream."""
    edge_values = {(u, p): ex.corr_out[u] for u, p in patched_edges}
    return run(model, graph, ex.clean, edge_values=edge_values)[0][-1]


# ----------------------------------------------------------------------------
# 5. Scores
# ----------------------------------------------------------------------------

def port_gradients(model, graph, ex, tokens, node_values=None, metrics=METRICS):
    """{metric: {port: d M_b / d in_port [P, D]}} for one example, in the run on
    `tokens` (with optional node overrides).  The gradient is the total derivative:
    it includes everything downstream of the port."""
    P = len(tokens)
    deltas = {p: torch.zeros(P, model.d_model, requires_grad=True) for p in graph.ports}
    logits, _, _ = run(model, graph, tokens, node_values=node_values, port_deltas=deltas)
    grads = {}
    for name in metrics:
        m = metric_value(name, logits[-1], ex)
        g = torch.autograd.grad(m, [deltas[p] for p in graph.ports], retain_graph=True)
        grads[name] = dict(zip(graph.ports, g))
    return grads


def average_grads(list_of_grads):
    n = len(list_of_grads)
    return {name: {p: sum(g[name][p] for g in list_of_grads) / n for p in list_of_grads[0][name]}
            for name in list_of_grads[0]}


def gradient_scores(model, graph, task, method, steps=IG_STEPS, metrics=METRICS):
    """eap, eap-ig, clean-corrupted:
    score(u->p) = (1/B) sum_b sum_pos (out_u(x'_b) - out_u(x_b)) . G_b[p]
    where G_b[p] is
      eap:             d M_b / d in_p on the clean run
      eap-ig:          mean over k = 0..steps-1 of d M_b / d in_p on the run whose
                       input node outputs e(x') + (k/steps) (e(x) - e(x'))
      clean-corrupted: mean of the clean-run and the corrupted-run gradients
    Returns {metric: {edge_name: score}}."""
    scores = {name: {n: 0.0 for n in graph.edge_names} for name in metrics}
    for ex in task:
        if method == "eap":
            grads = port_gradients(model, graph, ex, ex.clean, metrics=metrics)
        elif method == "clean-corrupted":
            grads = average_grads([port_gradients(model, graph, ex, ex.clean, metrics=metrics),
                                   port_gradients(model, graph, ex, ex.corrupted, metrics=metrics)])
        elif method == "eap-ig":
            e_clean, e_corr = ex.clean_out["input"], ex.corr_out["input"]
            grads = average_grads([
                port_gradients(model, graph, ex, ex.clean,
                               node_values={"input": e_corr + (k / steps) * (e_clean - e_corr)}, metrics=metrics)
                for k in range(steps)])
        else:
            raise ValueError(method)
        for name in metrics:
            for (u, p), n in zip(graph.edges, graph.edge_names):
                diff = ex.corr_out[u] - ex.clean_out[u]
                scores[name][n] += (diff * grads[name][p]).sum().item() / len(task)
    return scores


def exact_scores(model, graph, task, clean_metrics, metrics=METRICS):
    """exact: M(clean run with just that edge patched) - M(clean)."""
    scores = {name: {} for name in metrics}
    for edge, n in zip(graph.edges, graph.edge_names):
        m = mean_metrics(task, lambda ex: patched_last_logits(model, graph, ex, [edge]), metrics)
        for name in metrics:
            scores[name][n] = m[name] - clean_metrics[name]
    return scores


# ----------------------------------------------------------------------------
# 6. Path patching and path sets
# ----------------------------------------------------------------------------

def path_patch(model, graph, task, senders, receivers, recompute_mlps):
    """Sender -> receiver path patching.  Returns {metric: M(run 2)}.

    Run 1 (clean input): every sender outputs its corrupted value out_s(x'); every
    other head is frozen to its clean output; MLPs are frozen to clean too, or, with
    recompute_mlps, recomputed from their actual input in run 1 (a sender MLP always
    takes its corrupted output).  Record each receiver port's input.
    Run 2: the clean run with each receiver's input replaced by its recorded value,
    everything downstream recomputed."""
    def run2_last_logits(ex):
        frozen = {}
        for u in graph.nodes:
            if u in senders:
                frozen[u] = ex.corr_out[u]
            elif is_head(u) or (is_mlp(u) and not recompute_mlps):
                frozen[u] = ex.clean_out[u]
        _, _, inputs1 = run(model, graph, ex.clean, node_values=frozen)
        recorded = {r: inputs1[r] for r in receivers}
        return run(model, graph, ex.clean, port_values=recorded)[0][-1]
    return mean_metrics(task, run2_last_logits)


def check_paths(graph, paths):
    for path in paths:
        assert len(path) > 0, "empty path"
        for i, name in enumerate(path):
            assert name in graph.edge_of_name, f"no edge {name}"
            if i + 1 < len(path):
                port = graph.edge_of_name[name][1]
                nxt = graph.edge_of_name[path[i + 1]][0]
                assert graph.owner[port] == nxt, f"{name} does not chain into {path[i + 1]}"
        assert graph.edge_of_name[path[-1]][1] == "logits", f"path {path} does not end at logits"


def path_set_last_logits(model, graph, ex, paths):
    """Last-position logits of the treeified model in which a complete path
    input -> ... -> logits reads x iff it ENDS WITH some path in `paths`, else x'.

    A node instance is identified by its suffix s (tuple of edge names from it to
    logits).  Its output is
      out_u(x)   if some path p is a suffix of s (every complete path through it reads x),
      out_u(x')  if s is not a suffix of any p (every complete path through it reads x'),
      otherwise  recomputed from its ports, where a port's input is residual_bias +
                 the sum over its edges e = v->port of v's instance at suffix (e,) + s.
    The `input` node has no ports: in the third case it is x' (the complete path that
    ends at it is s itself, which does not end with any p).  The logits root (s = ())
    is always recomputed."""
    P = [tuple(p) for p in paths]

    def ends_with(seq, suffix):
        return len(suffix) <= len(seq) and seq[len(seq) - len(suffix):] == suffix

    def instance(u, s):
        if any(ends_with(s, p) for p in P):
            return ex.clean_out[u]
        if u == "input" or not any(ends_with(p, s) for p in P):
            return ex.corr_out[u]
        return node_from_ports(model, u, {port: port_input(port, s) for port in graph.ports_of[u]})

    def port_input(port, s):
        x = residual_bias(model, graph, port)
        for v in graph.upstream[port]:
            x = x + instance(v, (edge_name(v, port),) + s)
        return x

    return unembed(model, port_input("logits", ()))[-1]


def path_set_aue(model, graph, task, paths):
    """AUE = mean over examples of KL(p_clean || p_paths) at the last position."""
    check_paths(graph, paths)
    return mean_metrics(task, lambda ex: path_set_last_logits(model, graph, ex, paths))["kl"]


def all_complete_paths(graph):
    """Every path input -> ... -> logits (exponential; only for the smallest models)."""
    from_node = {}  # node -> list of edge-name tuples from it to logits

    def paths_from(u):
        if u not in from_node:
            result = []
            for (v, port), n in zip(graph.edges, graph.edge_names):
                if v != u:
                    continue
                owner = graph.owner[port]
                if owner == "logits":
                    result.append((n,))
                else:
                    result += [(n,) + rest for rest in paths_from(owner)]
            from_node[u] = result
        return from_node[u]
    return [list(p) for p in paths_from("input")]


# ----------------------------------------------------------------------------
# 7. Writers
# ----------------------------------------------------------------------------

def to_bf16_bits(a):
    """float32 array -> bfloat16 bit patterns (uint16), round to nearest even."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def from_bf16_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors, dtype):
    """tensors: {name: float32 array}; dtype: "F32", "F16" or "BF16".
    Layout: 8-byte little-endian header length, JSON header (padded with spaces to
    a multiple of 8), then the data, tensors back to back in header order."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype=np.float32)
        if dtype == "F32":
            raw = a.astype("<f4").tobytes()
        elif dtype == "F16":
            raw = a.astype("<f2").tobytes()
        elif dtype == "BF16":
            raw = to_bf16_bits(a).astype("<u2").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path):
    """Minimal reader, used to check the writer round-trips and to read the
    TransformerLens checkpoints.  -> {name: float32 array (bool for BOOL)}"""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out, end = {}, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = body[b:e]
        kind = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "BOOL": "|b1"}[info["dtype"]]
        a = np.frombuffer(raw, dtype=kind).reshape(info["shape"])
        if info["dtype"] == "BOOL":  # TransformerLens's attn.mask buffers
            out[name] = a.copy()
        else:
            out[name] = from_bf16_bits(a) if info["dtype"] == "BF16" else a.astype(np.float32)
        end = max(end, e)
    assert end == len(body), "data section not tiled exactly"
    return out


def write_json(path, obj, indent=1):
    Path(path).write_text(json.dumps(obj, indent=indent, allow_nan=False) + "\n")


# ----------------------------------------------------------------------------
# 8. Fixtures
# ----------------------------------------------------------------------------

def make_config(n_layer, n_head, n_embd, n_positions, vocab_size, n_inner, eps, attn_only, tied):
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "n_layer": n_layer,
        "n_head": n_head,
        "n_embd": n_embd,
        "n_positions": n_positions,
        "vocab_size": vocab_size,
        "n_inner": n_inner,
        "layer_norm_epsilon": eps,
        "activation_function": "gelu_new",
        "attn_only": attn_only,
        "tie_word_embeddings": tied,
    }


def random_weights(config, seed):
    """float32 weights, keyed by unprefixed HF names.  Matrices ~ N(0, 0.2), layer
    norm gains ~ 1 + N(0, 0.1), biases ~ N(0, 0.1): activations are O(1)."""
    rng = np.random.default_rng(seed)
    D, V, N, L = config["n_embd"], config["vocab_size"], config["n_positions"], config["n_layer"]
    F = config["n_inner"] or 4 * D

    def normal(shape, std, mean=0.0):
        return (mean + rng.normal(0.0, std, size=shape)).astype(np.float32)

    w = {"wte.weight": normal((V, D), 0.2), "wpe.weight": normal((N, D), 0.2)}
    for l in range(L):
        p = f"h.{l}."
        w[p + "ln_1.weight"], w[p + "ln_1.bias"] = normal(D, 0.1, 1.0), normal(D, 0.1)
        w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"] = normal((D, 3 * D), 0.25), normal(3 * D, 0.1)
        w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"] = normal((D, D), 0.2), normal(D, 0.1)
        if not config["attn_only"]:
            w[p + "ln_2.weight"], w[p + "ln_2.bias"] = normal(D, 0.1, 1.0), normal(D, 0.1)
            w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"] = normal((D, F), 0.2), normal(F, 0.1)
            w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"] = normal((F, D), 0.2), normal(D, 0.1)
    w["ln_f.weight"], w["ln_f.bias"] = normal(D, 0.1, 1.0), normal(D, 0.1)
    if not config["tie_word_embeddings"]:
        w["lm_head.weight"] = normal((V, D), 0.2)
    return w


def random_task(V, lengths, seed):
    """One example per length; corrupted = clean with about half of the positions
    (at least one) replaced by other random ids."""
    rng = np.random.default_rng(seed)
    lines = []
    for P in lengths:
        clean = rng.integers(0, V, size=P)
        corrupted = clean.copy()
        replace = rng.random(P) < 0.5
        replace[rng.integers(0, P)] = True
        for i in np.flatnonzero(replace):
            corrupted[i] = (clean[i] + rng.integers(1, V)) % V  # always a different id
        answer, wrong = rng.choice(V, size=2, replace=False)
        lines.append({"clean": [int(t) for t in clean], "corrupted": [int(t) for t in corrupted],
                      "answer": int(answer), "wrong": int(wrong)})
    return lines


def random_set_task(V, lengths, seed):
    """Like random_task, with answer and wrong SETS: disjoint, of 1 to 4 ids each, written
    as a plain id when the set has one (so both spellings are read)."""
    rng = np.random.default_rng(seed)
    lines = []
    for P in lengths:
        clean = rng.integers(0, V, size=P)
        corrupted = clean.copy()
        for i in rng.choice(P, size=max(1, P // 2), replace=False):
            corrupted[i] = (clean[i] + rng.integers(1, V)) % V
        n_answer, n_wrong = rng.integers(1, 5, size=2)
        ids = [int(t) for t in rng.choice(V, size=n_answer + n_wrong, replace=False)]
        answer, wrong = ids[:n_answer], ids[n_answer:]
        lines.append({"clean": [int(t) for t in clean], "corrupted": [int(t) for t in corrupted],
                      "answer": answer[0] if len(answer) == 1 else answer,
                      "wrong": wrong[0] if len(wrong) == 1 else wrong})
    return lines


def build_answer_set_fixture(name, lines):
    """Answer sets on an existing fixture model: <name>/answer-sets.jsonl and
    <name>/answer-sets.json with every metric of SET_METRICS for the clean and corrupted
    runs, eap, eap-ig and exact scores, and the evaluation of one circuit (the third of
    the edges with the largest |exact logit_diff| score; every other edge patched)."""
    out = FIXTURES / name
    config = json.loads((out / "config.json").read_text())
    stored = read_safetensors(out / "model.safetensors")
    prefix = "transformer." if any(k.startswith("transformer.") for k in stored) else ""
    values = {k[len(prefix):] if k.startswith(prefix) and k != "lm_head.weight" else k: a
              for k, a in stored.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    with open(out / "answer-sets.jsonl", "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    model = Model(config, values)
    graph = Graph(model)
    task = [Example(model, graph, line) for line in lines]
    clean = mean_metrics(task, lambda ex: ex.clean_logits, SET_METRICS)
    corrupted = mean_metrics(task, lambda ex: ex.corr_logits, SET_METRICS)
    scores = {m: gradient_scores(model, graph, task, m, metrics=SET_METRICS) for m in ["eap", "eap-ig"]}
    scores["exact"] = exact_scores(model, graph, task, clean, SET_METRICS)
    # The eap score is the derivative of the exact effect (the self-check, for sets too).
    for n in graph.edge_names[::5]:
        u, p = graph.edge_of_name[n]

        def M(alpha):
            def last(ex):
                value = ex.clean_out[u] + alpha * (ex.corr_out[u] - ex.clean_out[u])
                return run(model, graph, ex.clean, edge_values={(u, p): value})[0][-1]
            return mean_metrics(task, last, SET_METRICS)
        h = 1e-4
        plus, minus = M(h), M(-h)
        for m in SET_METRICS:
            if m != "logit_diff_max":  # max is not differentiable at a tie; none here, but keep it simple
                fd = (plus[m] - minus[m]) / (2 * h)
                assert abs(fd - scores["eap"][m][n]) < 1e-7, (n, m, fd, scores["eap"][m][n])
    ranked = sorted(graph.edge_names, key=lambda n: -abs(scores["exact"]["logit_diff"][n]))
    circuit = set(ranked[:len(ranked) // 3])
    patched = [graph.edge_of_name[n] for n in graph.edge_names if n not in circuit]
    evaluated = mean_metrics(task, lambda ex: patched_last_logits(model, graph, ex, patched), SET_METRICS)
    expected = {
        "model": name,
        "task": "answer-sets.jsonl",
        "eap_ig_steps": IG_STEPS,
        "metrics": {m: {"clean_metric": clean[m], "corrupted_metric": corrupted[m]} for m in SET_METRICS},
        "scores": scores,
        "circuit": [n for n in graph.edge_names if n in circuit],
        "circuit_metric": evaluated,
    }
    write_json(out / "answer-sets.json", expected)
    print(f"{name} answer sets: " + ", ".join(f"{m} {clean[m]:.4f}/{corrupted[m]:.4f}/{evaluated[m]:.4f}"
                                              for m in SET_METRICS))


def close(a, b, tol=1e-9):
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def self_checks(model, graph, task, lines, scores, metrics):
    """The assertions the brief asks for, plus a few more cross-checks."""
    for ex, line in zip(task, lines):
        # The decomposition computes the ordinary forward.
        for toks, last in ((ex.clean, ex.clean_logits), (ex.corrupted, ex.corr_logits)):
            assert torch.allclose(plain_forward(model, toks)[-1], last, atol=1e-12, rtol=0)
        # Patching no edge gives the clean logits, every edge the corrupted ones.
        assert torch.allclose(patched_last_logits(model, graph, ex, []), ex.clean_logits, atol=1e-12, rtol=0)
        assert torch.allclose(patched_last_logits(model, graph, ex, graph.edges), ex.corr_logits,
                              atol=1e-12, rtol=0)

    # EAP = d/d alpha at 0 of M(edge u->p carries out_u(x) + alpha (out_u(x') - out_u(x))).
    picks = [graph.edge_names[i] for i in np.linspace(0, len(graph.edges) - 1, 6).astype(int)]
    for n in picks:
        u, p = graph.edge_of_name[n]

        def M(alpha):
            def last(ex):
                value = ex.clean_out[u] + alpha * (ex.corr_out[u] - ex.clean_out[u])
                return run(model, graph, ex.clean, edge_values={(u, p): value})[0][-1]
            return mean_metrics(task, last)
        h = 1e-4
        plus, minus = M(h), M(-h)
        for name in METRICS:
            fd = (plus[name] - minus[name]) / (2 * h)
            assert abs(fd - scores["eap"][name][n]) < 1e-7, (n, name, fd, scores["eap"][name][n])

    # EAP-IG with one step is the corrupted-run gradient, so clean-corrupted is the
    # mean of eap and eap-ig(steps=1).
    ig1 = gradient_scores(model, graph, task, "eap-ig", steps=1)
    for name in METRICS:
        for n in graph.edge_names:
            want = 0.5 * (scores["eap"][name][n] + ig1[name][n])
            assert abs(scores["clean-corrupted"][name][n] - want) < 1e-12

    # Path patching, one sender and one receiver, frozen MLPs, = patching that edge.
    for n in picks:
        u, p = graph.edge_of_name[n]
        pp = path_patch(model, graph, task, [u], [p], recompute_mlps=False)
        for name in METRICS:
            assert close(pp[name] - metrics[name]["clean_metric"], scores["exact"][name][n]), (n, name)

    # Path sets.
    ate = metrics["kl"]["corrupted_metric"]
    assert close(path_set_aue(model, graph, task, []), ate)
    direct = [[edge_name(u, "logits")] for u in graph.upstream["logits"]]
    assert abs(path_set_aue(model, graph, task, direct)) < 1e-12
    if model.n_layer * model.n_head <= 6:  # exponential; only for the smallest models
        assert abs(path_set_aue(model, graph, task, all_complete_paths(graph))) < 1e-12
    for u in graph.upstream["logits"][::2]:
        e = edge_name(u, "logits")
        # Only the direct path u->logits reads x: the corrupted run with that edge clean.
        got = path_set_aue(model, graph, task, [[e]])
        want = mean_metrics(task, lambda ex: run(model, graph, ex.corrupted,
                                                 edge_values={(u, "logits"): ex.clean_out[u]})[0][-1])["kl"]
        assert close(got, want), (e, got, want)
        # Every direct path but u->logits reads x: the clean run with that edge patched.
        got = path_set_aue(model, graph, task, [d for d in direct if d != [e]])
        assert close(got, scores["exact"]["kl"][e]), (e, got)
    # A two-edge path v -> head<k> -> logits: the corrupted run in which that head's
    # k input carries clean v, and the head's new output reaches only the logits.
    head = f"a{model.n_layer - 1}.h0"
    v = f"a0.h{model.n_head - 1}"
    k_port = f"{head}<k>"
    got = path_set_aue(model, graph, task, [[edge_name(v, k_port), edge_name(head, "logits")]])

    def treeified_check(ex):
        ev = {(v, k_port): ex.clean_out[v]}
        for port in graph.ports:
            if port != "logits" and head in graph.upstream[port]:
                ev[(head, port)] = ex.corr_out[head]
        return run(model, graph, ex.corrupted, edge_values=ev)[0][-1]
    want = mean_metrics(task, treeified_check)["kl"]
    assert close(got, want), (got, want)
    # Each head reads its own k input (under grouped-query attention too: the heads of a
    # group share weights, not keys): patching v -> head<k> changes that head's output only.
    for ex in task:
        _, out, _ = run(model, graph, ex.clean, edge_values={(v, k_port): ex.corr_out[v]})
        changed = [u for u in graph.nodes if is_head(u) and layer_of(u) == model.n_layer - 1
                   and not torch.equal(out[u], ex.clean_out[u])]
        assert changed == [head], changed

    # The task file round-trips.
    for ex, line in zip(task, lines):
        assert ex.clean.tolist() == line["clean"] and len(line["clean"]) == len(line["corrupted"])
        assert line["answer"] != line["wrong"]


def path_patching_cases(model):
    """(senders, receivers, recompute_mlps, metric) for one model."""
    L, H = model.n_layer, model.n_head
    last, mlps = L - 1, not model.attn_only
    cases = [
        # = the edge a0.h1 -> a{L-1}.h0<k>
        (["a0.h1"], [f"a{last}.h0<k>"], False, "logit_diff"),
        # several senders, logits receiver
        ([f"a0.h{h}" for h in range(H)], ["logits"], False, "logit_diff"),
        # input among the senders, q and v receivers, MLPs recomputed
        (["input", "a0.h0"], [f"a{last}.h1<q>", f"a{last}.h0<v>"], True, "logit_diff"),
        (["input", "a0.h0"], [f"a{last}.h1<q>", f"a{last}.h0<v>"], False, "logit_diff"),
        # a receiver downstream of another receiver (its recorded input wins)
        ([f"a0.h{H - 1}"], [f"a{last}.h{H - 1}<v>", "logits"], True, "kl"),
    ]
    if mlps:
        cases += [
            (["a0.h1"], [f"m{last}"], True, "logit_diff"),
            (["a0.h1"], [f"m{last}"], False, "logit_diff"),
            (["m0"], [f"a{last}.h1<v>", "logits"], False, "logit_diff"),
            (["input", "m0"], ["logits"], True, "logit_diff"),
            (["input", "m0"], ["logits"], True, "kl"),
        ]
    if L >= 3:
        cases.append(([f"a1.h{h}" for h in range(H)] + ["a0.h0"], [f"a2.h2<k>", "m2"], True, "logit_diff"))
    return cases


def path_set_cases(model, graph):
    L, H = model.n_layer, model.n_head
    last = L - 1
    direct = [[edge_name(u, "logits")] for u in graph.upstream["logits"]]
    cases = [
        [],
        direct,
        [[f"a0.h1->a{last}.h0<k>", f"a{last}.h0->logits"], [f"a{last}.h1->logits"], ["a0.h0->logits"]],
        [[f"a{last}.h0->logits"]],
        [[f"input->a0.h0<v>", f"a0.h0->a{last}.h{H - 1}<q>", f"a{last}.h{H - 1}->logits"],
         [f"a0.h1->a{last}.h{H - 1}<k>", f"a{last}.h{H - 1}->logits"],
         ["input->logits"]],
    ]
    if not model.attn_only and not model.parallel:
        cases += [
            [["input->a0.h0<v>", "a0.h0->m0", "m0->logits"], ["a0.h0->logits"], [f"m{last}->logits"]],
            [[f"m0->a{last}.h1<q>", f"a{last}.h1->m{last}", f"m{last}->logits"],
             [f"a{last}.h1->logits"]],
        ]
    if model.parallel:  # the same shapes without the a{l}.h* -> m{l} edges a parallel block lacks
        assert L >= 2
        cases += [
            [["input->a0.h0<v>", "a0.h0->m1", "m1->logits"], ["a0.h0->logits"], ["m0->logits"]],
            [[f"m0->a{last}.h1<v>", f"a{last}.h1->logits"], [f"a0.h1->m{last}", f"m{last}->logits"]],
        ]
    if L * H <= 6:
        cases.append(all_complete_paths(graph))
    return cases


def build_fixture(name, config, weights, lines, prefix="", buffers=False, dtype="F32"):
    """Write one fixture directory; returns the expected.json object."""
    out = FIXTURES / name
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config, indent=2)

    # The weights as stored, and the values the reference computes with.
    stored = {}
    for k, a in weights.items():
        full = k if k == "lm_head.weight" else prefix + k
        stored[full] = a
    if buffers:  # HF attention buffers that loaders must ignore
        N = config["n_positions"]
        for l in range(config["n_layer"]):
            stored[f"{prefix}h.{l}.attn.bias"] = np.tril(np.ones((N, N), np.float32)).reshape(1, 1, N, N)
            stored[f"{prefix}h.{l}.attn.masked_bias"] = np.array(-1e4, dtype=np.float32)
    write_safetensors(out / "model.safetensors", stored, dtype)
    back = read_safetensors(out / "model.safetensors")
    values = {}
    for k, a in weights.items():
        full = k if k == "lm_head.weight" else prefix + k
        values[k] = back[full]
        if dtype == "F32":
            assert np.array_equal(values[k], a)
    if dtype == "BF16":  # our rounding agrees with torch's
        for k, a in weights.items():
            t = torch.tensor(a).to(torch.bfloat16).to(torch.float32).numpy()
            assert np.array_equal(t, values[k]), k

    with open(out / "task.jsonl", "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")

    expected = reference(name, Model(config, values), lines, full=dtype == "F32")
    write_json(out / "expected.json", expected)
    return expected


def reference(name, model, lines, full=True):
    """The expected.json object of one model and task: logits and metrics, and with
    `full` the graph, every score, path patching and path sets (self-checked)."""
    graph = Graph(model)
    task = [Example(model, graph, line) for line in lines]
    clean = mean_metrics(task, lambda ex: ex.clean_logits)
    corrupted = mean_metrics(task, lambda ex: ex.corr_logits)
    metrics = {m: {"clean_metric": clean[m], "corrupted_metric": corrupted[m]} for m in METRICS}
    expected = {
        "model": name,
        "logits": [ex.clean_logits.tolist() for ex in task],
        "corrupted_logits": [ex.corr_logits.tolist() for ex in task],
        "metrics": metrics,
    }
    if not full:
        return expected

    scores = {m: gradient_scores(model, graph, task, m) for m in ["eap", "eap-ig", "clean-corrupted"]}
    scores["exact"] = exact_scores(model, graph, task, clean)
    self_checks(model, graph, task, lines, scores, metrics)

    pp = []
    for senders, receivers, recompute, metric in path_patching_cases(model):
        got = path_patch(model, graph, task, senders, receivers, recompute)
        pp.append({"senders": senders, "receivers": receivers, "recompute_mlps": recompute,
                   "metric": metric, "effect": got[metric] - clean[metric],
                   "clean_metric": clean[metric], "patched_metric": got[metric]})
    ate = path_set_aue(model, graph, task, [])
    ps = []
    for paths in path_set_cases(model, graph):
        aue = path_set_aue(model, graph, task, paths)
        ps.append({"paths": paths, "delta": "kl", "aue": aue, "ate": ate,
                   "proportion_explained": 1.0 - aue / ate})

    expected.update({
        "eap_ig_steps": IG_STEPS,
        "nodes": graph.nodes,
        "n_edges": len(graph.edges),
        "edges": graph.edge_names,
        "scores": {method: scores[method] for method in METHODS},
        "path_patching": pp,
        "path_sets": ps,
    })
    return expected


def read_tl_checkpoint(directory):
    """A TransformerLens checkpoint directory (DESIGN.md section 3): config.json with
    HookedTransformerConfig's fields and model.safetensors with the state_dict."""
    config = json.loads((directory / "config.json").read_text())
    return TLModel(config, read_safetensors(directory / "model.safetensors"))


def build_tl_fixture(directory):
    """expected.json for a TransformerLens checkpoint written by make_tl_fixtures.py.
    First our logits (the residual decomposition, every position) must equal
    TransformerLens's own float64 logits (tl-logits.json) to 1e-9.
    Returns (expected, max |ours - TL float64|, max |ours - TL float32|)."""
    model = read_tl_checkpoint(directory)
    lines = [json.loads(s) for s in (directory / "task.jsonl").read_text().splitlines() if s.strip()]
    tl = json.loads((directory / "tl-logits.json").read_text())
    graph = Graph(model)
    gaps = {"float64": 0.0, "float32": 0.0}
    for i, line in enumerate(lines):
        for key, tokens in (("all_logits", line["clean"]), ("all_corrupted_logits", line["corrupted"])):
            ours = run(model, graph, torch.tensor(tokens))[0].detach()  # [P, d_vocab_out]
            for dtype in gaps:
                theirs = torch.tensor(tl[dtype][key][i])
                assert theirs.shape == ours.shape, (directory.name, key, i, theirs.shape, ours.shape)
                gaps[dtype] = max(gaps[dtype], (ours - theirs).abs().max().item())
    assert gaps["float64"] < 1e-9, (directory.name, gaps)
    assert gaps["float32"] < 1e-4, (directory.name, gaps)
    expected = reference(directory.name, model, lines)
    write_json(directory / "expected.json", expected)
    return expected, gaps["float64"], gaps["float32"]


# The Hugging Face checkpoints (written by make_hf_family_fixtures.py) that get an expected.json.
HF_FIXTURES = ["hf-pythia", "hf-pythia-sequential", "hf-llama", "hf-llama-gqa", "hf-qwen2", "hf-mistral",
               "hf-qwen3"]


def read_hf_checkpoint(directory):
    """A Hugging Face GPT-NeoX / Llama / Qwen2 / Mistral / Qwen3 directory: config.json and one
    model.safetensors."""
    config = json.loads((directory / "config.json").read_text())
    return HFModel(config, read_safetensors(directory / "model.safetensors"))


def build_hf_fixture(directory):
    """expected.json for a Hugging Face checkpoint written by make_hf_family_fixtures.py.
    First the plain forward must reproduce transformers' float64_strict logits
    (hf-logits.json; last position and every position) to 1e-10, and so must the residual
    decomposition; every tensor of the file must have been read, and the transformers 4.x
    config (hf-legacy-configs/) must describe the same architecture.
    Returns (expected, {logits kind: max |plain forward - transformers|})."""
    model = read_hf_checkpoint(directory)
    lines = [json.loads(s) for s in (directory / "task.jsonl").read_text().splitlines() if s.strip()]
    hf = json.loads((directory / "hf-logits.json").read_text())
    graph = Graph(model)
    gaps = {"float64_strict": 0.0, "decomposition": 0.0, "float64": 0.0, "float32": 0.0}
    for i, line in enumerate(lines):
        for last, every, tokens in (("logits", "all_logits", line["clean"]),
                                    ("corrupted_logits", "all_corrupted_logits", line["corrupted"])):
            ours = plain_forward(model, torch.tensor(tokens))  # [P, V]
            for kind in ("float64_strict", "float64", "float32"):
                theirs = torch.tensor(hf[kind][every][i])
                assert theirs.shape == ours.shape, (directory.name, every, i, theirs.shape, ours.shape)
                assert hf[kind][last][i] == hf[kind][every][i][-1]
                gaps[kind] = max(gaps[kind], (ours - theirs).abs().max().item())
            decomposed = run(model, graph, torch.tensor(tokens))[0].detach()
            strict = torch.tensor(hf["float64_strict"][every][i])
            gaps["decomposition"] = max(gaps["decomposition"], (decomposed - strict).abs().max().item())
    assert gaps["float64_strict"] < 1e-10 and gaps["decomposition"] < 1e-10, (directory.name, gaps)
    assert gaps["float64"] < 1e-5 and gaps["float32"] < 1e-4, (directory.name, gaps)
    assert model.used == set(model.w), (directory.name, set(model.w) - model.used)
    legacy = json.loads((FIXTURES / "hf-legacy-configs" / f"{directory.name}.json").read_text())
    assert hf_architecture(legacy) == model.arch, (directory.name, hf_architecture(legacy), model.arch)
    expected = reference(directory.name, model, lines)
    write_json(directory / "expected.json", expected)
    return expected, gaps


def summary(name, e):
    m = e["metrics"]
    line = f"{name}: " + ", ".join(f"{k} {m[k]['clean_metric']:.4f}/{m[k]['corrupted_metric']:.4f}" for k in METRICS)
    if "scores" in e:
        ex = e["scores"]["exact"]["logit_diff"]
        line += f"; {e['n_edges']} edges, |exact logit_diff| max {max(map(abs, ex.values())):.3f}"
        line += "; PE " + " ".join(f"{c['proportion_explained']:.3f}" for c in e["path_sets"])
    print(line)


GPT2_FIXTURES = ["gpt2-tiny", "gpt2-tiny-f16", "gpt2-tiny-bf16", "gpt2-small3", "attn-only"]


def tl_fixtures():
    """The TransformerLens checkpoint directories make_tl_fixtures.py wrote."""
    return [d for d in sorted(FIXTURES.glob("tl-*")) if (d / "model.safetensors").exists()]


def main(only=()):
    """Write every fixture, or with `only` (fixture directory names, e.g. hf-qwen3) just
    those: each is computed from its own seeds or files, so the others' files are left
    untouched.  The refusal checks (tl-unsupported, hf-unsupported) write nothing and
    always run."""
    known = GPT2_FIXTURES + [d.name for d in tl_fixtures()] + HF_FIXTURES
    unknown = sorted(set(only) - set(known))
    assert not unknown, f"unknown fixture(s) {unknown}; known: {' '.join(known)}"

    def wanted(name):
        return not only or name in only

    FIXTURES.mkdir(parents=True, exist_ok=True)

    # (1) GPT-2, L=2 H=2 D=16, n_inner null; "transformer." prefix and attention buffers.
    c1 = make_config(2, 2, 16, 16, 41, None, 1e-5, False, True)
    w1 = random_weights(c1, seed=1)
    t1 = random_task(41, [3, 5, 8, 4, 6], seed=101)
    if wanted("gpt2-tiny"):
        summary("gpt2-tiny", build_fixture("gpt2-tiny", c1, w1, t1, prefix="transformer.", buffers=True))
    # The same weights as F16 and BF16 (expected numbers from the rounded weights).
    for dtype, name in (("F16", "gpt2-tiny-f16"), ("BF16", "gpt2-tiny-bf16")):
        if wanted(name):
            summary(name, build_fixture(name, c1, w1, t1, prefix="transformer.", buffers=True, dtype=dtype))

    # (2) GPT-2, L=3 H=4 D=32, n_inner 48.
    c2 = make_config(3, 4, 32, 24, 57, 48, 1e-5, False, True)
    if wanted("gpt2-small3"):
        summary("gpt2-small3", build_fixture("gpt2-small3", c2, random_weights(c2, seed=2),
                                             random_task(57, [7, 4, 8, 3, 6, 5], seed=102)))

    # (3) Attention-only, untied unembedding (lm_head.weight), non-default epsilon.
    c3 = make_config(2, 3, 24, 12, 37, None, 1e-4, True, False)
    if wanted("attn-only"):
        summary("attn-only", build_fixture("attn-only", c3, random_weights(c3, seed=3),
                                           random_task(37, [4, 8, 3, 6], seed=103)))

    # (4) Answer sets (DESIGN.md section 2) on the first model (written with gpt2-tiny).
    if wanted("gpt2-tiny"):
        build_answer_set_fixture("gpt2-tiny", random_set_task(41, [4, 7, 3, 6, 5], seed=104))

    # (5) TransformerLens checkpoints (written by make_tl_fixtures.py), and the
    # configurations the reference refuses as circuitry must.
    for directory in tl_fixtures():
        if wanted(directory.name):
            e, gap64, gap32 = build_tl_fixture(directory)
            summary(directory.name, e)
            print(f"  max |reference - TransformerLens| logits: float64 {gap64:.1e}, float32 {gap32:.1e}")
    for path in sorted((FIXTURES / "tl-unsupported").glob("*.json")):
        try:
            TLModel(json.loads(path.read_text()), {})
        except AssertionError as refused:
            print(f"tl-unsupported/{path.name}: {refused}")
        else:
            raise AssertionError(f"{path} was not refused")

    # (6) Hugging Face GPT-NeoX (Pythia) and Llama-family checkpoints (written by
    # make_hf_family_fixtures.py), and the configurations the reference refuses.
    for name in HF_FIXTURES:
        if wanted(name):
            e, gaps = build_hf_fixture(FIXTURES / name)
            summary(name, e)
            print("  max |reference - transformers| logits: " + ", ".join(f"{k} {v:.1e}" for k, v in gaps.items()))
    for path in sorted((FIXTURES / "hf-unsupported").glob("*.json")):
        try:
            hf_architecture(json.loads(path.read_text()))
        except AssertionError as refused:
            print(f"hf-unsupported/{path.name}: {refused}")
        else:
            raise AssertionError(f"{path} was not refused")

    total = sum(f.stat().st_size for f in FIXTURES.rglob("*") if f.is_file())
    print(f"fixtures: {total} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])

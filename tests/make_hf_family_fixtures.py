#!/usr/bin/env python3
"""Hugging Face checkpoints of the Pythia (GPT-NeoX) and Llama families (Llama, Qwen2, Mistral,
Qwen3) for circuitry's loaders.

For each tiny configuration below it builds the model from a config (`torch.manual_seed`
first), re-draws every parameter (matrices ~ N(0, 0.2), norm weights ~ 1 + N(0, 0.1),
biases ~ N(0, 0.1); numpy, fixed seeds) and writes tests/fixtures/hf-NAME/:

    config.json          as model.save_pretrained(dir, safe_serialization=True) writes it
    model.safetensors    the same (or model.safetensors.index.json + model-0000k-of-0000n
                         .safetensors for the sharded fixture); generation_config.json deleted
    task.jsonl           4 or 5 examples of lengths 3 to 8 (clean / corrupted / answer / wrong)
    hf-logits.json       the transformers model's own logits of every example, batch 1,
                         no padding, no attention mask: float32, float64 (model.to(float64)),
                         and float64_strict (see below), last position and all positions

plus tests/fixtures/hf-unsupported/*.json (configs circuitry must refuse) and
tests/fixtures/hf-legacy-configs/*.json (the same models' configs in the transformers 4.x
key names that checkpoints on the Hub carry: rope_theta, rotary_pct, rotary_emb_base,
rope_scaling, torch_dtype).  See tests/fixtures/hf-family-README.md.

float64_strict: transformers computes two things in float32 even after model.to(float64):
the rotary cos/sin tables (inv_freq and position * inv_freq are cast to float32) and
RMSNorm (it upcasts its input to float32, not to float64).  That limits the plain float64
run to ~1e-7 agreement with an exact float64 implementation.  float64_strict is the same
model with those two islands recomputed in float64 (inv_freq = 1 / theta^(2i/dim) in
float64), which an exact float64 implementation should reproduce to ~1e-13.  The script
checks float64_strict against its own small independent float64 implementation read back
from the written safetensors files (to 1e-11), float64 against float32 (1e-4), and that
transformers 5 reads every legacy config back to the same logits.

    ~/peers/bin/python tests/make_hf_family_fixtures.py [NAME ...]

(torch 2.15, transformers 5.24, safetensors; no downloads, CPU, one thread, ~10 s.)
The output is deterministic: running it twice gives byte-identical files.

With NAMEs (keys of MODELS, e.g. `hf-qwen3`) it writes only those models: tests/fixtures/NAME/
and that model's own hf-legacy-configs/NAME.json; hf-unsupported/ and every other model's files
are left as they are (the fixtures were not all written with the same transformers version:
hf-qwen3 with transformers 5.25, the others with 5.24; see the README).

hf-llama-rope-linear and hf-llama-rope-llama3 are Llama models with rope scaling (rope_type
"linear" and "llama3"); float64_strict and the independent implementation use the scaled inverse
frequencies in float64 (inverse_frequencies), which the script also writes to
rope-inv-freq.json next to transformers' own float32 ones (written with
`make_hf_family_fixtures.py hf-llama-rope-linear hf-llama-rope-llama3`, transformers 5.25).

Qwen3 (hf-qwen3) is the Llama layout plus q_norm / k_norm: an RMSNorm (weight [head_dim], eps
rms_norm_eps) over each head's query and key, after q_proj / k_proj and before rotary.
"""

import copy
import importlib.metadata
import json
import math
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

import transformers
from transformers import (AutoModelForCausalLM, BertConfig, GPTNeoXConfig, GPTNeoXForCausalLM,
                          LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          MixtralConfig, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

torch.set_num_threads(1)
transformers.logging.set_verbosity_error()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
try:
    transformers.utils.logging.disable_progress_bar()
except AttributeError:
    pass

FIXTURES = Path(__file__).resolve().parent / "fixtures"
V = 37  # vocabulary size of every model (odd on purpose)

NEOX = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=64, vocab_size=V,
            max_position_embeddings=16, rotary_pct=0.25, use_parallel_residual=True, tie_word_embeddings=False)
LLAMA = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=4, intermediate_size=48,
             vocab_size=V, max_position_embeddings=16, rms_norm_eps=1e-5, rope_theta=10000.0,
             tie_word_embeddings=False)

# name -> (config class, model class, config fields, weight seed, task lengths, task seed, how to save)
MODELS = {
    "hf-pythia": (GPTNeoXConfig, GPTNeoXForCausalLM, NEOX, 21, [3, 6, 8, 5], 121, "f32"),
    "hf-pythia-sequential": (GPTNeoXConfig, GPTNeoXForCausalLM,
                             dict(NEOX, use_parallel_residual=False, rotary_pct=1.0), 22, [7, 4, 3, 8], 122, "f32"),
    "hf-llama": (LlamaConfig, LlamaForCausalLM, LLAMA, 23, [5, 3, 8, 6], 123, "f32"),
    "hf-llama-gqa": (LlamaConfig, LlamaForCausalLM, dict(LLAMA, num_key_value_heads=2, head_dim=8),
                     24, [4, 8, 3, 7], 124, "f32"),
    "hf-qwen2": (Qwen2Config, Qwen2ForCausalLM,
                 dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=48, vocab_size=V, max_position_embeddings=16, rms_norm_eps=1e-6,
                      rope_theta=10000.0, tie_word_embeddings=True), 25, [6, 3, 8, 4], 125, "f32"),
    "hf-mistral": (MistralConfig, MistralForCausalLM,
                   dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                        intermediate_size=48, vocab_size=V, max_position_embeddings=16, rms_norm_eps=1e-5,
                        rope_theta=10000.0, sliding_window=None, tie_word_embeddings=False),
                   26, [8, 5, 3, 6], 126, "f32"),
    # QK-norm: per-head RMSNorms self_attn.q_norm / k_norm (weight [head_dim]) before rotary
    "hf-qwen3": (Qwen3Config, Qwen3ForCausalLM,
                 dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
                      intermediate_size=48, vocab_size=V, max_position_embeddings=16, rms_norm_eps=1e-6,
                      rope_theta=10000.0, attention_bias=False, tie_word_embeddings=True, use_sliding_window=False),
                 27, [5, 8, 3, 7], 127, "f32"),
    # the hf-llama model (same seeds, same task), saved in 3 shards / in bfloat16
    "hf-llama-sharded": (LlamaConfig, LlamaForCausalLM, LLAMA, 23, [5, 3, 8, 6], 123, "sharded"),
    "hf-llama-bf16": (LlamaConfig, LlamaForCausalLM, LLAMA, 23, [5, 3, 8, 6], 123, "bf16"),
    # rope scaling (transformers' modeling_rope_utils.py): linear divides every frequency by factor;
    # llama3 (Llama 3.1, 3.2) with head_dim 16 and a context of 32 keeps pair 0 (wavelength 6.3 <
    # 32 / high_freq_factor), interpolates pair 1 (19.9) and divides pairs 2..7 (> 32 / low_freq_factor)
    "hf-llama-rope-linear": (LlamaConfig, LlamaForCausalLM,
                             dict(LLAMA, rope_scaling={"rope_type": "linear", "factor": 4.0}), 28, [6, 8, 4, 7], 128, "f32"),
    # sliding windows of 3 keys (the task's sequences are 3 to 8 long): Mistral's on every layer;
    # Qwen2's from max_window_layers (1) on, written out as layer_types
    "hf-mistral-sliding": (MistralConfig, MistralForCausalLM,
                           dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                                intermediate_size=48, vocab_size=V, max_position_embeddings=16, rms_norm_eps=1e-5,
                                rope_theta=10000.0, sliding_window=3, tie_word_embeddings=False),
                           33, [8, 6, 4, 7], 133, "f32"),
    "hf-qwen2-sliding": (Qwen2Config, Qwen2ForCausalLM,
                         dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                              intermediate_size=48, vocab_size=V, max_position_embeddings=16, rms_norm_eps=1e-6,
                              rope_theta=10000.0, tie_word_embeddings=True, use_sliding_window=True, sliding_window=3,
                              max_window_layers=1), 34, [7, 8, 5, 4], 134, "f32"),
    "hf-llama-rope-llama3": (LlamaConfig, LlamaForCausalLM,
                             dict(LLAMA, head_dim=16, max_position_embeddings=64,
                                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
                             29, [8, 5, 7, 3], 129, "f32"),
}
SHARD_BYTES = 30_000  # 80.4 kB of float32 hf-llama weights -> 3 shards


# ----------------------------------------------------------------------------
# Models, weights, tasks
# ----------------------------------------------------------------------------

def build_model(config_cls, model_cls, fields, seed):
    torch.manual_seed(seed)
    config = config_cls(**fields)
    config._attn_implementation = "sdpa"  # eager attention takes its softmax in float32
    model = model_cls(config)
    model.eval()
    randomize(model, seed)
    return model


def is_norm_weight(name):
    """input_layernorm, post_attention_layernorm, final / model.norm, and Qwen3's self_attn.q_norm / k_norm."""
    return name.endswith(".weight") and ("norm" in name.split(".")[-2])


def randomize(model, seed):
    """Matrices ~ N(0, 0.2), norm weights ~ 1 + N(0, 0.1), biases (and norm biases) ~ N(0, 0.1).
    named_parameters lists a tied lm_head once (as the embedding)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if is_norm_weight(name):
                value = 1.0 + rng.normal(0.0, 0.1, size=p.shape)
            elif name.endswith(".bias"):
                value = rng.normal(0.0, 0.1, size=p.shape)
            elif name.endswith(".weight") and p.dim() == 2:
                value = rng.normal(0.0, 0.2, size=p.shape)
            else:
                raise ValueError(f"unexpected parameter {name} {list(p.shape)}")
            p.copy_(torch.tensor(value, dtype=p.dtype))


def random_task(vocab, lengths, seed):
    """One example per length; corrupted = clean with about half of the positions (at least
    one) replaced by other ids; answer != wrong."""
    rng = np.random.default_rng(seed)
    lines = []
    for P in lengths:
        clean = rng.integers(0, vocab, size=P)
        corrupted = clean.copy()
        replace = rng.random(P) < 0.5
        replace[rng.integers(0, P)] = True
        for i in np.flatnonzero(replace):
            corrupted[i] = (clean[i] + rng.integers(1, vocab)) % vocab  # always a different id
        answer, wrong = rng.choice(vocab, size=2, replace=False)
        lines.append({"clean": [int(t) for t in clean], "corrupted": [int(t) for t in corrupted],
                      "answer": int(answer), "wrong": int(wrong)})
    return lines


# ----------------------------------------------------------------------------
# Running the transformers model
# ----------------------------------------------------------------------------

def strict_float64(model):
    """A float64 copy of model whose rotary tables and RMSNorms are computed in float64
    (transformers computes them in float32 whatever the model's dtype).  Every module whose class
    ends in RMSNorm is replaced, Qwen3's per-head q_norm / k_norm (Qwen3RMSNorm) included."""
    m = copy.deepcopy(model).to(torch.float64)
    cfg = m.config
    for module in m.modules():
        cls = type(module).__name__
        if cls.endswith("RotaryEmbedding"):
            rope = cfg.rope_parameters
            head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
            dim = int(head_dim * rope.get("partial_rotary_factor", 1.0))
            inv_freq = inverse_frequencies(rope, dim)

            def rotary_forward(self, x, position_ids, inv_freq=inv_freq):
                freqs = position_ids[..., None].to(torch.float64) * inv_freq
                emb = torch.cat((freqs, freqs), dim=-1)
                return emb.cos().to(x.dtype), emb.sin().to(x.dtype)
            module.forward = types.MethodType(rotary_forward, module)
        elif cls.endswith("RMSNorm"):
            def rms_forward(self, h):
                variance = h.pow(2).mean(-1, keepdim=True)
                return self.weight * (h * torch.rsqrt(variance + self.variance_epsilon))
            module.forward = types.MethodType(rms_forward, module)
    return m


def inverse_frequencies(rope, dim):
    """The rotary inverse frequencies of rope_parameters `rope` in float64, by the formulas of
    transformers' modeling_rope_utils.py (_compute_default_rope_parameters,
    _compute_linear_scaling_rope_parameters, _compute_llama3_parameters), which compute them in
    float32."""
    inv_freq = 1.0 / (rope["rope_theta"] ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    if rope["rope_type"] == "linear":
        return inv_freq / rope["factor"]
    if rope["rope_type"] == "llama3":
        factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
        context = rope["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        smooth = (context / wavelen - low) / (high - low)
        scaled = torch.where(wavelen > context / low, inv_freq / factor, inv_freq)
        medium = ~(wavelen < context / high) & ~(wavelen > context / low)
        return torch.where(medium, (1 - smooth) * scaled / factor + smooth * scaled, scaled)
    assert rope["rope_type"] == "default", rope
    return inv_freq


def hf_logits(model, lines, as_float):
    out = {"logits": [], "corrupted_logits": [], "all_logits": [], "all_corrupted_logits": []}
    with torch.no_grad():
        for line in lines:
            for key, tokens in (("logits", line["clean"]), ("corrupted_logits", line["corrupted"])):
                logits = model(input_ids=torch.tensor([tokens]), use_cache=False).logits[0]
                assert logits.shape == (len(tokens), model.config.vocab_size)
                rows = [[as_float(v) for v in row] for row in logits.tolist()]
                out[key].append(rows[-1])
                out["all_" + key].append(rows)
    return out


def float32_value(v):
    """The shortest decimal that reads back as that float32."""
    return float(str(np.float32(v)))


def max_gap(a, b):
    return max(abs(x - y) for ra, rb in zip(a["all_logits"] + a["all_corrupted_logits"],
                                             b["all_logits"] + b["all_corrupted_logits"])
               for xa, xb in zip(ra, rb) for x, y in zip(xa, xb))


# ----------------------------------------------------------------------------
# An independent float64 implementation, from the written files (the layout check)
# ----------------------------------------------------------------------------

def read_weights(directory):
    directory = Path(directory)
    index = directory / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text())["weight_map"]
        state = {}
        for shard in sorted(set(weight_map.values())):
            part = load_file(str(directory / shard))
            assert not (set(part) & set(state)), "shards overlap"
            assert all(weight_map[k] == shard for k in part), "index disagrees with a shard"
            state.update(part)
        assert set(state) == set(weight_map)
    else:
        state = load_file(str(directory / "model.safetensors"))
    return {k: v.to(torch.float64) for k, v in state.items()}


def rope(x, positions, rope_parameters, rot):
    """Rotate-half rotary on the first `rot` dims of x [P, n, d] (pairs (i, i + rot/2))."""
    half = rot // 2
    inv_freq = inverse_frequencies(rope_parameters, rot)
    ang = positions[:, None].to(torch.float64) * inv_freq[None, :]  # [P, half]
    cos, sin = ang.cos()[:, None, :], ang.sin()[:, None, :]
    x1, x2, rest = x[..., :half], x[..., half:rot], x[..., rot:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], dim=-1)


def causal_attention(q, k, v, window=None):
    """q [P, H, d], k / v [P, H, d] -> [P, H * d]; with a window, query i sees keys i - window < j <= i."""
    P, H, d = q.shape
    s = torch.einsum("phd,qhd->hpq", q, k) / math.sqrt(d)
    s = s.masked_fill(torch.triu(torch.ones(P, P, dtype=torch.bool), 1), float("-inf"))
    if window is not None:
        s = s.masked_fill(torch.tril(torch.ones(P, P, dtype=torch.bool), -window), float("-inf"))
    z = torch.einsum("hpq,qhd->phd", s.softmax(-1), v)
    return z.reshape(P, H * d)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def reference_neox(W, cfg, tokens):
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    dh = D // H
    rp = cfg["rope_parameters"]
    rot = int(dh * rp.get("partial_rotary_factor", 1.0))
    eps, P = cfg["layer_norm_eps"], len(tokens)
    pos = torch.arange(P)
    x = W["gpt_neox.embed_in.weight"][tokens]
    for l in range(cfg["num_hidden_layers"]):
        p = f"gpt_neox.layers.{l}."
        h = layer_norm(x, W[p + "input_layernorm.weight"], W[p + "input_layernorm.bias"], eps)
        qkv = (h @ W[p + "attention.query_key_value.weight"].T + W[p + "attention.query_key_value.bias"])
        qkv = qkv.view(P, H, 3 * dh)  # per head: q | k | v
        q, k, v = qkv[..., :dh], qkv[..., dh:2 * dh], qkv[..., 2 * dh:]
        q, k = rope(q, pos, rp, rot), rope(k, pos, rp, rot)
        attn = causal_attention(q, k, v) @ W[p + "attention.dense.weight"].T + W[p + "attention.dense.bias"]

        def mlp(y):
            y = layer_norm(y, W[p + "post_attention_layernorm.weight"], W[p + "post_attention_layernorm.bias"], eps)
            y = y @ W[p + "mlp.dense_h_to_4h.weight"].T + W[p + "mlp.dense_h_to_4h.bias"]
            y = 0.5 * y * (1.0 + torch.erf(y / math.sqrt(2.0)))  # hidden_act "gelu" (exact)
            return y @ W[p + "mlp.dense_4h_to_h.weight"].T + W[p + "mlp.dense_4h_to_h.bias"]
        if cfg["use_parallel_residual"]:
            x = x + attn + mlp(x)
        else:
            x = x + attn
            x = x + mlp(x)
    x = layer_norm(x, W["gpt_neox.final_layer_norm.weight"], W["gpt_neox.final_layer_norm.bias"], eps)
    return x @ W["embed_out.weight" if "embed_out.weight" in W else "lm_head.weight"].T


def window(cfg, l):
    """Layer l's sliding window as transformers reads config.json: Mistral's on every layer; with
    use_sliding_window, the layers layer_types marks sliding_attention (Qwen2, Qwen3)."""
    if cfg.get("sliding_window") is None:
        return None
    if cfg["model_type"] == "mistral":
        return cfg["sliding_window"]
    if cfg.get("use_sliding_window") and cfg["layer_types"][l] == "sliding_attention":
        return cfg["sliding_window"]
    return None


def reference_llama(W, cfg, tokens):
    D, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    dh = cfg.get("head_dim") or D // H
    rp, eps, P = cfg["rope_parameters"], cfg["rms_norm_eps"], len(tokens)
    pos = torch.arange(P)

    def rms(y, w):
        return y / torch.sqrt((y * y).mean(-1, keepdim=True) + eps) * w

    def lin(y, name):
        out = y @ W[name + ".weight"].T
        return out + W[name + ".bias"] if name + ".bias" in W else out
    qk_norm = cfg["model_type"] == "qwen3"  # per-head RMSNorm of q and k (weight [dh]) before rotary
    x = W["model.embed_tokens.weight"][tokens]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        assert (p + "self_attn.q_norm.weight" in W) == (p + "self_attn.k_norm.weight" in W) == qk_norm
        h = rms(x, W[p + "input_layernorm.weight"])
        q = lin(h, p + "self_attn.q_proj").view(P, H, dh)
        k = lin(h, p + "self_attn.k_proj").view(P, KV, dh)
        v = lin(h, p + "self_attn.v_proj").view(P, KV, dh)
        if qk_norm:  # rms over the last dim (each head's dh values), weight broadcast over heads
            q, k = rms(q, W[p + "self_attn.q_norm.weight"]), rms(k, W[p + "self_attn.k_norm.weight"])
        q, k = rope(q, pos, rp, dh), rope(k, pos, rp, dh)
        group = torch.arange(H) // (H // KV)  # query head i reads KV head i // (H / KV)
        x = x + lin(causal_attention(q, k[:, group], v[:, group], window(cfg, l)), p + "self_attn.o_proj")
        h = rms(x, W[p + "post_attention_layernorm.weight"])
        gate = lin(h, p + "mlp.gate_proj")
        x = x + lin(gate * torch.sigmoid(gate) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
    x = rms(x, W["model.norm.weight"])
    unembed = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    assert ("lm_head.weight" in W) == (not cfg["tie_word_embeddings"])
    return x @ unembed.T


def check_reference(directory, lines, strict):
    cfg = json.loads((Path(directory) / "config.json").read_text())
    W = read_weights(directory)
    ref = reference_neox if cfg["model_type"] == "gpt_neox" else reference_llama
    gap = 0.0
    for line, rows, crows in zip(lines, strict["all_logits"], strict["all_corrupted_logits"]):
        for tokens, hf in ((line["clean"], rows), (line["corrupted"], crows)):
            gap = max(gap, (ref(W, cfg, tokens) - torch.tensor(hf, dtype=torch.float64)).abs().max().item())
    assert gap < 1e-11, f"{directory}: independent float64 reference differs by {gap}"
    return gap


# ----------------------------------------------------------------------------
# Legacy (transformers 4.x) config.json
# ----------------------------------------------------------------------------

def legacy_config(cfg):
    """The same model described with the keys transformers 4.x wrote and Hub checkpoints carry."""
    out = {}
    for key, value in cfg.items():
        if key == "rope_parameters":
            if cfg["model_type"] == "gpt_neox":
                out["rotary_emb_base"] = value["rope_theta"]
                out["rotary_pct"] = value.get("partial_rotary_factor", 1.0)
            else:
                out["rope_theta"] = value["rope_theta"]
                scaling = {k: v for k, v in value.items() if k != "rope_theta"}
                if scaling["rope_type"] == "default":
                    out["rope_scaling"] = None
                elif scaling["rope_type"] == "linear":  # older checkpoints spell it "type"
                    out["rope_scaling"] = {"factor": scaling["factor"], "type": "linear"}
                else:  # as Llama 3.1's config.json
                    out["rope_scaling"] = scaling
        elif key == "dtype":
            out["torch_dtype"] = value
        elif key in ("attention_bias", "layer_types") and cfg["model_type"] in ("gpt_neox", "qwen2"):
            continue  # 4.x had neither for these families (GPT-NeoX's attention always had biases)
        elif key == "layer_types" and cfg["model_type"] == "qwen3":
            continue  # as the Qwen3 checkpoints on the Hub (written by 4.51) carry it: attention_bias, no layer_types
        else:
            out[key] = value
    out["transformers_version"] = "4.51.0" if cfg["model_type"] == "qwen3" else "4.46.0"  # Qwen3 is new in 4.51
    return dict(sorted(out.items()))


def check_legacy(directory, legacy, lines, f32):
    """transformers 5 must read the legacy config as the same model."""
    with tempfile.TemporaryDirectory() as tmp:
        for f in Path(directory).iterdir():
            if f.name.endswith(".safetensors") or f.name.endswith(".index.json"):
                shutil.copy(f, tmp)
        (Path(tmp) / "config.json").write_text(json.dumps(legacy, indent=2) + "\n")
        model = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32, attn_implementation="sdpa")
        model.eval()
        again = hf_logits(model, lines, float32_value)
    assert max_gap(again, f32) == 0.0, f"{directory}: legacy config reads as a different model"


# ----------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------

def write_json(path, obj, indent=1):
    Path(path).write_text(json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def save(model, out, how):
    if out.exists():
        shutil.rmtree(out)
    if how == "f32":
        model.save_pretrained(out, safe_serialization=True)
    elif how == "sharded":
        model.save_pretrained(out, safe_serialization=True, max_shard_size=SHARD_BYTES)
    elif how == "bf16":
        copy.deepcopy(model).to(torch.bfloat16).save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)
    names = sorted(f.name for f in out.iterdir())
    if how == "sharded":
        assert names == ["config.json", "model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                         "model-00003-of-00003.safetensors", "model.safetensors.index.json"], names
    else:
        assert names == ["config.json", "model.safetensors"], names


def build(name, config_cls, model_cls, fields, seed, lengths, task_seed, how):
    out = FIXTURES / name
    model = build_model(config_cls, model_cls, fields, seed)
    save(model, out, how)
    if how == "bf16":  # from here on, the model is the bf16-rounded one
        model = model_cls.from_pretrained(out, dtype=torch.float32, attn_implementation="sdpa")
        model.eval()
        assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"

    lines = random_task(model.config.vocab_size, lengths, task_seed)
    with open(out / "task.jsonl", "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")

    f32 = hf_logits(model, lines, float32_value)
    f64 = hf_logits(copy.deepcopy(model).to(torch.float64), lines, float)
    strict = hf_logits(strict_float64(model), lines, float)
    gap32, gap_strict = max_gap(f64, f32), max_gap(f64, strict)
    assert gap32 < 1e-4, f"{name}: float64 and float32 logits differ by {gap32}"
    assert gap_strict < 1e-5, f"{name}: float64 and float64_strict differ by {gap_strict}"
    gap_ref = check_reference(out, lines, strict)
    write_json(out / "hf-logits.json", {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "float64": f64,
        "float32": f32,
        "float64_strict": strict,
    }, indent=None)

    cfg = json.loads((out / "config.json").read_text())
    rope_parameters = cfg.get("rope_parameters") or {}
    if rope_parameters.get("rope_type", "default") != "default":
        write_inverse_frequencies(model, rope_parameters, out)
    if how == "f32" or how == "bf16":
        legacy = legacy_config(cfg)
        check_legacy(out, legacy, lines, f32)
        (FIXTURES / "hf-legacy-configs").mkdir(exist_ok=True)
        write_json(FIXTURES / "hf-legacy-configs" / f"{name}.json", legacy, indent=2)
    size = sum(f.stat().st_size for f in out.iterdir())
    print(f"{name}: {len(lines)} examples, {size} bytes; |f64 - f32| <= {gap32:.1e}, "
          f"|f64 - f64_strict| <= {gap_strict:.1e}, |f64_strict - reference| <= {gap_ref:.1e}")
    return model


def write_inverse_frequencies(model, rope_parameters, out):
    """rope-inv-freq.json: the scaled rotary inverse frequencies in float64 (inverse_frequencies)
    and as transformers' own float32 buffer (model.rotary_emb.inv_freq), which agree to float32."""
    head_dim = model.config.head_dim
    ours = inverse_frequencies(rope_parameters, head_dim)
    theirs = model.model.rotary_emb.inv_freq.to(torch.float64)
    gap = ((ours - theirs).abs() / ours).max().item()
    assert gap < 1e-6, f"{out}: float64 inverse frequencies differ from transformers' by {gap} (relative)"
    write_json(out / "rope-inv-freq.json", {"rope_parameters": rope_parameters, "head_dim": head_dim,
                                            "float64": ours.tolist(),
                                            "transformers_float32": [float32_value(v) for v in theirs.tolist()]}, indent=2)


def config_only(config):
    with tempfile.TemporaryDirectory() as tmp:
        config.save_pretrained(tmp)
        return json.loads((Path(tmp) / "config.json").read_text())


def unsupported():
    out = FIXTURES / "hf-unsupported"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    small = dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=4, intermediate_size=48, vocab_size=V,
                 max_position_embeddings=16)
    yarn = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4}
    # as transformers 5 writes it: rope_scaling is folded into rope_parameters
    v5 = config_only(LlamaConfig(**small, architectures=["LlamaForCausalLM"], num_key_value_heads=4, rope_parameters=dict(yarn, rope_theta=10000.0)))
    assert v5["rope_parameters"]["rope_type"] == "yarn" and "rope_scaling" not in v5
    write_json(out / "rope-parameters-yarn.json", v5, indent=2)
    # as Hub checkpoints carry it (transformers 4.x keys): rope_scaling + rope_theta
    v4 = legacy_config(config_only(LlamaConfig(**small, architectures=["LlamaForCausalLM"], num_key_value_heads=4, rope_theta=10000.0)))
    v4["rope_scaling"] = dict(yarn)
    assert LlamaConfig(**copy.deepcopy({k: v for k, v in v4.items() if k != "model_type"})
                       ).rope_parameters["rope_type"] == "yarn"  # transformers 5 still reads it
    write_json(out / "rope-scaling-yarn.json", v4, indent=2)
    write_json(out / "mixtral.json", config_only(MixtralConfig(**small, architectures=["MixtralForCausalLM"], num_key_value_heads=2, num_local_experts=4,
                                                               num_experts_per_tok=2, sliding_window=None)), indent=2)
    write_json(out / "unknown.json", config_only(BertConfig(architectures=["BertForMaskedLM"], num_hidden_layers=2, hidden_size=32, num_attention_heads=4,
                                                            intermediate_size=48, vocab_size=V,
                                                            max_position_embeddings=16)), indent=2)
    gqa = config_only(LlamaConfig(**small, architectures=["LlamaForCausalLM"], num_key_value_heads=3))
    assert gqa["num_attention_heads"] % gqa["num_key_value_heads"] != 0
    write_json(out / "gqa-indivisible.json", gqa, indent=2)
    sliding = config_only(MistralConfig(**small, architectures=["MistralForCausalLM"], num_key_value_heads=2, sliding_window=4))
    assert sliding["sliding_window"] == 4 < sliding["max_position_embeddings"]
    write_json(out / "mistral-sliding.json", sliding, indent=2)


def main(argv):
    """No arguments: every model and hf-unsupported/.  NAME ...: only those models (their
    directories and their own hf-legacy-configs/NAME.json); nothing else is rewritten."""
    unknown = [n for n in argv if n not in MODELS]
    if unknown:
        sys.exit(f"unknown fixture(s) {unknown}; choose from {list(MODELS)}")
    keys = {}
    for name, spec in MODELS.items():
        if argv and name not in argv:
            continue
        model = build(name, *spec)
        if name in ("hf-pythia", "hf-llama-gqa", "hf-qwen2", "hf-qwen3"):  # as the file names them (sorted)
            keys[name] = [f"{k} {list(v.shape)} {str(v.dtype).replace('torch.', '')}"
                          for k, v in sorted(load_file(str(FIXTURES / name / "model.safetensors")).items())]
    if not argv:
        unsupported()
    for name, ks in keys.items():
        print(f"{name} state_dict:\n  " + "\n  ".join(ks))


if __name__ == "__main__":
    main(sys.argv[1:])

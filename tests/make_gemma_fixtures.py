#!/usr/bin/env python3
"""Hugging Face checkpoints of Gemma 2 and Gemma 3 (text) for circuitry's loader and forward.

Each tiny configuration below is built from a config (`torch.manual_seed` first), every parameter
re-drawn (matrices ~ N(0, 0.2); norm weights ~ N(0, 0.1), which Gemma applies as 1 + w; numpy,
fixed seeds), and written to tests/fixtures/NAME/ as make_hf_family_fixtures.py writes its models
(config.json, model.safetensors, task.jsonl, hf-logits.json with float32, float64 and
float64_strict logits, last position and all positions).

The settings are chosen so that each of Gemma's pieces changes the logits: a sliding window of 3
keys (the task's sequences are 3 to 8 long) on the layers layer_types marks, attention-logit and
final-logit soft caps small enough to bind (gemma2: 1.5 and 2.5), query_pre_attn_scalar unlike
head_dim, a local rotary base unlike the global one and linear rope scaling of the global layers
(gemma3), grouped-query attention, three layers so that local and global layers alternate.

float64_strict: transformers keeps four things in float32 after model.to(float64): the rotary
tables, the RMSNorms (Gemma's upcast to float32), the eager attention's softmax, and Gemma 3's
embed_scale buffer (torch.tensor(sqrt(hidden_size)), a float32 scalar). float64_strict is the
same model with those recomputed in float64, which an exact float64 implementation reproduces to
~1e-13.

    ~/peers/bin/python tests/make_gemma_fixtures.py

(torch 2.15, transformers 5.25; CPU, one thread, a few seconds; deterministic output.)
"""

import contextlib
import copy
import math
import sys
import types
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_hf_family_fixtures as fam  # noqa: E402  (shared helpers: tasks, logits, saving)

import transformers.models.gemma2.modeling_gemma2 as modeling_gemma2  # noqa: E402
import transformers.models.gemma3.modeling_gemma3 as modeling_gemma3  # noqa: E402
from transformers import Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig  # noqa: E402

V = fam.V
SMALL = dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
             intermediate_size=48, vocab_size=V, max_position_embeddings=16, rms_norm_eps=1e-6, sliding_window=3,
             tie_word_embeddings=True)

# name -> (config class, model class, config fields, weight seed, task lengths, task seed)
MODELS = {
    "hf-gemma2": (Gemma2Config, Gemma2ForCausalLM,
                  dict(SMALL, query_pre_attn_scalar=12, attn_logit_softcapping=1.5, final_logit_softcapping=2.5,
                       layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                       rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
                  31, [5, 8, 3, 7], 131),
    "hf-gemma3": (Gemma3TextConfig, Gemma3ForCausalLM,
                  dict(SMALL, query_pre_attn_scalar=6, layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                       rope_parameters={"full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 50000.0},
                                        "sliding_attention": {"rope_type": "default", "rope_theta": 1000.0}}),
                  32, [8, 4, 6, 3], 132),
}


def build_model(config_cls, model_cls, fields, seed):
    torch.manual_seed(seed)
    config = config_cls(**fields)
    config._attn_implementation = "eager"  # sdpa has no soft cap
    model = model_cls(config)
    model.eval()
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if fam.is_norm_weight(name):
                value = rng.normal(0.0, 0.1, size=p.shape)  # applied as 1 + w
            elif name.endswith(".weight") and p.dim() == 2:
                value = rng.normal(0.0, 0.2, size=p.shape)
            else:
                raise ValueError(f"unexpected parameter {name} {list(p.shape)}")
            p.copy_(torch.tensor(value, dtype=p.dtype))
    return model


def strict_attention(module, query, key, value, attention_mask, dropout=0.0, scaling=None, softcap=None, **kwargs):
    """transformers' Gemma eager attention with the softmax in the inputs' dtype."""
    key_states = modeling_gemma2.repeat_kv(key, module.num_key_value_groups)
    value_states = modeling_gemma2.repeat_kv(value, module.num_key_value_groups)
    weights = torch.matmul(query, key_states.transpose(2, 3)) * scaling
    if softcap is not None:
        weights = torch.tanh(weights / softcap) * softcap
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = torch.softmax(weights, dim=-1)
    return torch.matmul(weights, value_states).transpose(1, 2).contiguous(), weights


@contextlib.contextmanager
def strict_attention_functions():
    saved = modeling_gemma2.eager_attention_forward, modeling_gemma3.eager_attention_forward
    modeling_gemma2.eager_attention_forward = modeling_gemma3.eager_attention_forward = strict_attention
    try:
        yield
    finally:
        modeling_gemma2.eager_attention_forward, modeling_gemma3.eager_attention_forward = saved


def strict_float64(model):
    m = copy.deepcopy(model).to(torch.float64)
    cfg = m.config
    params = cfg.rope_parameters
    for module in m.modules():
        cls = type(module).__name__
        if cls.endswith("RotaryEmbedding"):
            tables = {kind: fam.inverse_frequencies(p, cfg.head_dim) for kind, p in params.items()} \
                if "full_attention" in params else {None: fam.inverse_frequencies(params, cfg.head_dim)}

            def rotary_forward(self, x, position_ids, layer_type=None, tables=tables):
                freqs = position_ids[..., None].to(torch.float64) * tables[layer_type]
                emb = torch.cat((freqs, freqs), dim=-1)
                return emb.cos().to(x.dtype), emb.sin().to(x.dtype)
            module.forward = types.MethodType(rotary_forward, module)
        elif cls.endswith("RMSNorm"):
            def rms_forward(self, h):
                return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps) * (1.0 + self.weight)
            module.forward = types.MethodType(rms_forward, module)
        elif cls.endswith("ScaledWordEmbedding"):
            module.embed_scale = torch.tensor(math.sqrt(cfg.hidden_size), dtype=torch.float64)
    return m


def build(name, config_cls, model_cls, fields, seed, lengths, task_seed):
    out = fam.FIXTURES / name
    model = build_model(config_cls, model_cls, fields, seed)
    lines = fam.random_task(V, lengths, task_seed)
    fam.save(model, out, "f32")
    (out / "task.jsonl").write_text("".join(fam.json.dumps(line) + "\n" for line in lines))
    f32 = fam.hf_logits(model, lines, fam.float32_value)
    f64 = fam.hf_logits(copy.deepcopy(model).to(torch.float64), lines, float)
    with strict_attention_functions():
        strict = fam.hf_logits(strict_float64(model), lines, float)
    assert fam.max_gap(f32, f64) < 1e-4 and fam.max_gap(strict, f64) < 1e-5, (fam.max_gap(f32, f64), fam.max_gap(strict, f64))
    fam.write_json(out / "hf-logits.json", {"float32": f32, "float64": f64, "float64_strict": strict})
    print(f"{name}: float32 vs float64_strict {fam.max_gap(f32, strict):.2e}, float64 vs float64_strict {fam.max_gap(f64, strict):.2e}")
    return model, lines


def ablated_logits(name, lines):
    """How much each of Gemma's pieces moves the float64_strict logits (the settings must bind)."""
    config_cls, model_cls, fields, seed, _, _ = MODELS[name]
    base = build_model(config_cls, model_cls, fields, seed)
    with strict_attention_functions():
        ref = fam.hf_logits(strict_float64(base), lines, float)
        for key, value in (("sliding_window", 64), ("attn_logit_softcapping", None), ("final_logit_softcapping", None),
                           ("query_pre_attn_scalar", fields["head_dim"])):
            if key not in fields:
                continue
            changed = build_model(config_cls, model_cls, dict(fields, **{key: value}), seed)
            print(f"  {name} without {key}: logits move by {fam.max_gap(ref, fam.hf_logits(strict_float64(changed), lines, float)):.3f}")


def main():
    torch.set_num_threads(1)
    for name, spec in MODELS.items():
        _, lines = build(name, *spec)
        ablated_logits(name, lines)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""GGUF files of the rope-scaled Hugging Face fixtures, as llama.cpp's convert_hf_to_gguf.py
writes them, for circuitry's GGUF rope scaling (include/circuitry/io/gguf_model.hpp):

    tests/fixtures/gguf-rope/linear.gguf   hf-llama-rope-linear: {arch}.rope.scaling.type "linear"
                                           and {arch}.rope.scaling.factor (TextModel's
                                           set_gguf_parameters)
    tests/fixtures/gguf-rope/llama3.gguf   hf-llama-rope-llama3: the tensor rope_freqs.weight, one
                                           float32 frequency divisor per rotated pair, by
                                           LlamaModel.generate_extra_tensors' formula

Every tensor F32 under llama.cpp's names, q and k rows permuted for interleaved rotary
(LlamaModel.permute). transformers' GGUF loader ignores rope_freqs, so the check is the HF
fixture's own logits (hf-logits.json): the GGUF file holds the same model.

One difference from the converter: it takes llama3's original context from the top level of
config.json (default 8192), not from rope_scaling; Llama 3.1 and 3.2 have 8192 in rope_scaling
and nothing at the top level, so the two agree there. This fixture's context (32) is taken from
rope_scaling, so the file holds the model transformers runs.

    /work/scratch/peers/bin/python tests/make_gguf_rope_fixtures.py

(gguf 0.19, safetensors; CPU, about a second; deterministic.)
"""

import json
import math
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parent / "fixtures"


def permute(weights, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute: HF's half-split rotary rows -> interleaved."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def llama3_divisors(rope, dim):
    """LlamaModel.generate_extra_tensors: per pair, 1 (high frequencies), factor (low), or the
    reciprocal of the smooth interpolation between."""
    freqs = 1.0 / (rope["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    factor, low, high = rope["factor"], rope["low_freq_factor"], rope["high_freq_factor"]
    context = rope["original_max_position_embeddings"]
    divisors = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < context / high:
            divisors.append(1.0)
        elif wavelen > context / low:
            divisors.append(factor)
        else:
            smooth = (context / wavelen - low) / (high - low)
            divisors.append(1 / ((1 - smooth) / factor + smooth))
    return np.array(divisors, dtype=np.float32)


def write(name, source):
    cfg = json.loads((ROOT / source / "config.json").read_text())
    W = load_file(str(ROOT / source / "model.safetensors"))
    H, KV, L = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    dh = cfg["head_dim"]
    rope = cfg["rope_parameters"]
    out = ROOT / "gguf-rope"
    out.mkdir(exist_ok=True)
    w = gguf.GGUFWriter(str(out / f"{name}.gguf"), arch="llama")
    w.add_name(source)
    w.add_block_count(L)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_key_length(dh)
    w.add_value_length(dh)
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(rope["rope_theta"])
    w.add_rope_dimension_count(dh)
    if rope["rope_type"] == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(rope["factor"])
    else:
        assert rope["rope_type"] == "llama3", rope
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_tensor("token_embd.weight", W["model.embed_tokens.weight"])
    if rope["rope_type"] == "llama3":
        w.add_tensor("rope_freqs.weight", llama3_divisors(rope, dh))
    for l in range(L):
        hf, p = f"model.layers.{l}.", f"blk.{l}."
        w.add_tensor(p + "attn_norm.weight", W[hf + "input_layernorm.weight"])
        w.add_tensor(p + "attn_q.weight", permute(W[hf + "self_attn.q_proj.weight"], H))
        w.add_tensor(p + "attn_k.weight", permute(W[hf + "self_attn.k_proj.weight"], KV))
        w.add_tensor(p + "attn_v.weight", W[hf + "self_attn.v_proj.weight"])
        w.add_tensor(p + "attn_output.weight", W[hf + "self_attn.o_proj.weight"])
        w.add_tensor(p + "ffn_norm.weight", W[hf + "post_attention_layernorm.weight"])
        w.add_tensor(p + "ffn_gate.weight", W[hf + "mlp.gate_proj.weight"])
        w.add_tensor(p + "ffn_up.weight", W[hf + "mlp.up_proj.weight"])
        w.add_tensor(p + "ffn_down.weight", W[hf + "mlp.down_proj.weight"])
    w.add_tensor("output_norm.weight", W["model.norm.weight"])
    w.add_tensor("output.weight", W["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(name, "written;", (out / f"{name}.gguf").stat().st_size, "bytes")


def main():
    write("linear", "hf-llama-rope-linear")
    write("llama3", "hf-llama-rope-llama3")


if __name__ == "__main__":
    main()

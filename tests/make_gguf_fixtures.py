#!/usr/bin/env python3
"""GGUF fixtures for circuitry's GGUF reader (include/circuitry/io/gguf_*.hpp), written with the
`gguf` package (gguf-py, llama.cpp's own Python writer and reader):

    tests/fixtures/gguf-quants/quants.gguf
        for every tensor type circuitry reads (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
        Q2_K, Q3_K, Q4_K, Q5_K, Q6_K): "TYPE" [2, 512], blocks of random bytes (their f16 scales
        set to finite values) and, where gguf-py can quantize the type, "TYPE.quantized" [3, 256]
        made from random floats; next to each, "TYPE.expected" (and "TYPE.quantized.expected"),
        the same values as F32 as gguf-py's own numpy dequantize() computes them. Plus metadata
        of every value type (the "test." keys) for the reader's tests.

    tests/fixtures/gguf-llama, gguf-qwen2, gguf-gpt2: tiny random models as llama.cpp's
    convert_hf_to_gguf.py lays them out (tensor names, metadata keys, Llama's q/k rows permuted
    for llama.cpp's interleaved rotary), their tensors in a mix of the types above, and a small
    byte-level BPE tokenizer in the metadata (tokenizer.ggml.*):
        model.gguf       the file
        task.jsonl       examples (ids)
        hf-logits.json   the logits transformers computes after loading the same file itself
                         (AutoModelForCausalLM.from_pretrained(dir, gguf_file="model.gguf"),
                         which dequantizes with gguf-py and undoes the permutation), float32,
                         last position and all positions, and the ids its tokenizer (read from
                         the same file) gives a few texts.

    tests/fuzz/seeds/gguf/small.gguf: a seed for the gguf fuzz harness.

Where transformers' GGUF loader falls back to a class default instead of reading the metadata,
the fixture has that default, so both read the same model: GPT-2's n_inner (4 n_embd) and its
context (transformers reads context_length into n_ctx, not n_positions: 1024 here).

    /work/scratch/peers/bin/python tests/make_gguf_fixtures.py [NAME ...]

(gguf 0.19, transformers 5.25, torch; CPU, a few seconds; deterministic.)
"""

import json
from pathlib import Path

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as Q

ROOT = Path(__file__).resolve().parent / "fixtures"

# Byte offsets of each block's f16 scales, set to small finite values in random blocks.
SCALES = {Q.Q8_0: [0], Q.Q4_0: [0], Q.Q4_1: [0, 2], Q.Q5_0: [0], Q.Q5_1: [0, 2], Q.Q2_K: [80, 82],
          Q.Q3_K: [108], Q.Q4_K: [0, 2], Q.Q5_K: [0, 2], Q.Q6_K: [208]}
ALL_TYPES = [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K]


def random_blocks(rng, qtype, rows, cols, scale):
    """Raw bytes [rows, bytes per row] of `qtype`: random blocks, scales ~ scale."""
    block_elements, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    if qtype in (Q.F32, Q.F16, Q.BF16):
        values = rng.normal(0, scale, size=(rows, cols)).astype(np.float32)
        return gguf.quants.quantize(values, qtype)
    n_blocks = rows * cols // block_elements
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for offset in SCALES[qtype]:
        d = rng.uniform(0.5, 1.0, size=n_blocks).astype(np.float16) * np.float16(scale)
        raw[:, offset:offset + 2] = d.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(rows, -1)


def quants_fixture():
    rng = np.random.default_rng(2025)
    out = ROOT / "gguf-quants"
    out.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out / "quants.gguf"), arch="test")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.25)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo")
    w.add_uint64("test.u64", 1 << 40)
    w.add_int64("test.i64", -(1 << 40))
    w.add_float64("test.f64", 1e-300)
    w.add_array("test.strings", ["a", "", "ccc"])
    w.add_array("test.numbers", [1, 2, 3])
    for qtype in ALL_TYPES:
        name = qtype.name
        raw = random_blocks(rng, qtype, 2, 512, 0.01)
        w.add_tensor(name, raw, raw_dtype=qtype)
        w.add_tensor(name + ".expected", gguf.quants.dequantize(raw, qtype).astype(np.float32))
        values = rng.normal(0, 1, size=(3, 256)).astype(np.float32)
        try:
            quantized = gguf.quants.quantize(values, qtype)
        except NotImplementedError:
            continue
        w.add_tensor(name + ".quantized", quantized, raw_dtype=qtype)
        w.add_tensor(name + ".quantized.expected", gguf.quants.dequantize(quantized, qtype).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def fuzz_seed(tokens, merges, token_types):
    """tests/fuzz/seeds/gguf/small.gguf: a one-layer GPT-2's metadata, the tokenizer, and one
    tensor of each of a few types (not a whole model: the harness reads tensors one by one)."""
    rng = np.random.default_rng(7)
    out = ROOT.parent / "fuzz" / "seeds" / "gguf"
    out.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out / "small.gguf"), arch="gpt2")
    for key, value in (("block_count", 1), ("context_length", 8), ("embedding_length", 32), ("feed_forward_length", 128),
                       ("attention.head_count", 2)):
        w.add_uint32(f"gpt2.{key}", value)
    w.add_float32("gpt2.attention.layer_norm_epsilon", 1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(token_types)
    w.add_token_merges(merges)
    w.add_tensor("token_embd.weight", gguf.quants.quantize(rng.normal(size=(len(tokens), 32)).astype(np.float32), Q.F16),
                 raw_dtype=Q.F16)
    for qtype in (Q.Q8_0, Q.Q4_1, Q.Q5_0, Q.Q3_K):
        w.add_tensor(f"t.{qtype.name}", random_blocks(rng, qtype, 1, 256, 0.01), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def byte_level_tokens():
    """GPT-2's bytes_to_unicode alphabet (256 tokens), some merges, and <|endoftext|>."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    tokens = [chars[b] for b in range(256)]
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"), ("Ġ", "s"),
              ("r", "e"), ("a", "t"), ("Ġ", "w"), ("o", "u"), ("Ġ", "c"), ("e", "n"), ("1", "2")]
    for a, b in merges:
        tokens.append(a + b)
    tokens.append("<|endoftext|>")
    token_types = [1] * (len(tokens) - 1) + [3]  # normal, control
    return tokens, [f"{a} {b}" for a, b in merges], token_types


def permute(weights, n_head, n_head_kv):
    """convert_hf_to_gguf.py's LlamaModel.permute: HF's half-split rotary rows -> interleaved."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


MODELS = {
    # name: arch, sizes, tensor types (by role), pre-tokenizer
    "gguf-llama": dict(arch="llama", D=64, H=4, KV=2, F=256, L=2, ctx=64, pre="llama-bpe", tied=False,
                       types=dict(embd=Q.Q8_0, q=Q.Q4_0, k=Q.Q4_1, v=Q.Q5_0, o=Q.Q5_1, gate=Q.Q8_0, up=Q.BF16,
                                  down=[Q.Q4_K, Q.Q6_K], out=Q.F16)),
    "gguf-qwen2": dict(arch="qwen2", D=64, H=4, KV=2, F=256, L=2, ctx=64, pre="qwen2", tied=True,
                       types=dict(embd=Q.F16, q=Q.Q8_0, k=Q.Q4_0, v=Q.Q4_1, o=Q.Q5_1, gate=Q.Q5_0, up=Q.F32,
                                  down=[Q.Q2_K, Q.Q3_K])),
    "gguf-gpt2": dict(arch="gpt2", D=64, H=4, F=256, L=2, ctx=1024, pre="gpt-2", tied=True,
                      types=dict(embd=Q.F32, pos=Q.Q8_0, qkv=Q.Q8_0, o=Q.Q4_0, up=Q.Q5_1, down=[Q.Q5_K, Q.Q8_0])),
    # Gemma: head_dim 256, where llama.cpp's score scale 1/sqrt(key_length) and transformers'
    # query_pre_attn_scalar default (256) agree; Gemma 2's soft caps at transformers' defaults
    # (50, 30; llama.cpp reads the metadata); a sliding window of 3 keys; Gemma 3 with 6 layers so
    # that llama.cpp's fixed pattern (every 6th layer global, local rotary base 10000) and
    # transformers' default one both have layer 5 global.
    "gguf-gemma2": dict(arch="gemma2", D=64, H=2, KV=1, dh=256, F=256, L=2, ctx=64, pre="gpt-2", tied=True,
                        types=dict(embd=Q.Q8_0, q=Q.Q4_0, k=Q.Q8_0, v=Q.Q4_1, o=Q.Q5_0, gate=Q.F16, up=Q.Q5_1,
                                   down=[Q.Q6_K, Q.Q8_0])),
    "gguf-gemma3": dict(arch="gemma3", D=64, H=2, KV=1, dh=256, F=256, L=6, ctx=64, pre="gpt-2", tied=True,
                        types=dict(embd=Q.F16, q=Q.Q8_0, k=Q.Q4_1, v=Q.Q8_0, o=Q.BF16, gate=Q.Q5_0, up=Q.F32,
                                   down=[Q.Q8_0, Q.Q4_K, Q.Q8_0, Q.Q5_1, Q.Q8_0, Q.Q6_K])),
}


def model_fixture(name, spec, tokens, merges, token_types):
    rng = np.random.default_rng(sum(map(ord, name)))
    out = ROOT / name
    out.mkdir(parents=True, exist_ok=True)
    arch, D, H, F, L = spec["arch"], spec["D"], spec["H"], spec["F"], spec["L"]
    KV = spec.get("KV", H)
    dh = spec.get("dh", D // H)
    gemma = arch.startswith("gemma")
    V = len(tokens)
    types = spec["types"]
    w = gguf.GGUFWriter(str(out / "model.gguf"), arch=arch)
    w.add_name(name)
    w.add_block_count(L)
    w.add_context_length(spec["ctx"])
    w.add_embedding_length(D)
    w.add_feed_forward_length(F)
    w.add_head_count(H)
    if arch == "gpt2":
        w.add_layer_norm_eps(1e-5)
    else:
        w.add_head_count_kv(KV)
        w.add_layer_norm_rms_eps(1e-6)
        w.add_rope_freq_base(20000.0 if arch == "gemma3" else 10000.0)
        w.add_rope_dimension_count(dh)
    if gemma:
        w.add_key_length(dh)
        w.add_value_length(dh)
        w.add_sliding_window(3)
    if arch == "gemma2":
        w.add_attn_logit_softcapping(50.0)
        w.add_final_logit_softcapping(30.0)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(spec["pre"])
    w.add_token_list(tokens)
    w.add_token_types(token_types)
    w.add_token_merges(merges)
    w.add_bos_token_id(V - 1)
    w.add_eos_token_id(V - 1)

    def matrix(tensor_name, qtype, rows, cols, scale=0.2, transform=None):
        if qtype in SCALES and qtype.name.endswith("_K"):
            raw = random_blocks(rng, qtype, rows, cols, 0.0005)
        else:
            values = rng.normal(0, scale, size=(rows, cols)).astype(np.float32)
            if transform is not None:
                values = transform(values)
            raw = gguf.quants.quantize(values, qtype)
        w.add_tensor(tensor_name, raw, raw_dtype=qtype)

    def vector(tensor_name, n, mean):
        w.add_tensor(tensor_name, (mean + rng.normal(0, 0.1, size=n)).astype(np.float32))

    matrix("token_embd.weight", types["embd"], V, D, 1.0)
    if arch == "gpt2":
        matrix("position_embd.weight", types["pos"], spec["ctx"], D, 0.1)
    for l in range(L):
        p = f"blk.{l}."
        vector(p + "attn_norm.weight", D, 1.0)
        if arch == "gpt2":
            vector(p + "attn_norm.bias", D, 0.0)
            matrix(p + "attn_qkv.weight", types["qkv"], 3 * D, D)
            vector(p + "attn_qkv.bias", 3 * D, 0.0)
            matrix(p + "attn_output.weight", types["o"], D, D)
            vector(p + "attn_output.bias", D, 0.0)
            vector(p + "ffn_norm.weight", D, 1.0)
            vector(p + "ffn_norm.bias", D, 0.0)
            matrix(p + "ffn_up.weight", types["up"], F, D)
            vector(p + "ffn_up.bias", F, 0.0)
            matrix(p + "ffn_down.weight", types["down"][l], D, F)
            vector(p + "ffn_down.bias", D, 0.0)
            continue
        q_perm = (lambda x: permute(x, H, H)) if arch == "llama" else None
        k_perm = (lambda x: permute(x, H, KV)) if arch == "llama" else None
        matrix(p + "attn_q.weight", types["q"], H * dh, D, transform=q_perm)
        matrix(p + "attn_k.weight", types["k"], KV * dh, D, transform=k_perm)
        matrix(p + "attn_v.weight", types["v"], KV * dh, D)
        if arch == "qwen2":
            vector(p + "attn_q.bias", H * dh, 0.0)
            vector(p + "attn_k.bias", KV * dh, 0.0)
            vector(p + "attn_v.bias", KV * dh, 0.0)
        if arch == "gemma3":  # llama.cpp stores Gemma's norm gains as 1 + w
            vector(p + "attn_q_norm.weight", dh, 1.0)
            vector(p + "attn_k_norm.weight", dh, 1.0)
        matrix(p + "attn_output.weight", types["o"], D, H * dh, scale=0.05 if gemma else 0.2)
        if gemma:
            vector(p + "post_attention_norm.weight", D, 1.0)
        vector(p + "ffn_norm.weight", D, 1.0)
        matrix(p + "ffn_gate.weight", types["gate"], F, D)
        matrix(p + "ffn_up.weight", types["up"], F, D)
        matrix(p + "ffn_down.weight", types["down"][l], D, F)
        if gemma:
            vector(p + "post_ffw_norm.weight", D, 1.0)
    vector("output_norm.weight", D, 1.0)
    if arch == "gpt2":
        vector("output_norm.bias", D, 0.0)
    if not spec["tied"]:
        matrix("output.weight", types["out"], V, D)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    examples = []
    for i, n in enumerate([3, 5, 8, 6]):
        clean = rng.integers(0, V, size=n).tolist()
        corrupted = rng.integers(0, V, size=n).tolist()
        examples.append(dict(clean=clean, corrupted=corrupted, answer=int(rng.integers(0, V)), wrong=int(rng.integers(0, V))))
    (out / "task.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples))

    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(str(out), gguf_file="model.gguf", dtype=torch.float32)
    model.eval()
    result = {"model": name, "transformers": __import__("transformers").__version__, "gguf": gguf.__version__
              if hasattr(gguf, "__version__") else "0.19"}
    with torch.no_grad():
        for key, field in (("logits", "clean"), ("corrupted_logits", "corrupted")):
            last, every = [], []
            for i, e in enumerate(examples):
                y = model(torch.tensor([e[field]])).logits[0]
                last.append(y[-1].tolist())
                if i < 2:  # every position of the first two (keeps the file small)
                    every.append(y.tolist())
            result[key] = last
            result["all_" + key] = every
    if not gemma:  # (transformers reads a Gemma file's tokenizer as SentencePiece's; these carry GPT-2's)
        texts = ["the cat sat on the mat", "Hello, world! 123 456", "in the  en\nd, we're there"]
        tokenizer = AutoTokenizer.from_pretrained(str(out), gguf_file="model.gguf")
        result["texts"] = [{"text": t, "ids": tokenizer.encode(t, add_special_tokens=False)} for t in texts]
    (out / "hf-logits.json").write_text(json.dumps(result) + "\n")
    print(name, "written;", (out / "model.gguf").stat().st_size, "bytes")


def main(only):
    """No arguments: every fixture. NAME ...: only those models (keys of MODELS)."""
    torch.set_num_threads(1)
    tokens, merges, token_types = byte_level_tokens()
    if not only:
        quants_fixture()
        fuzz_seed(tokens, merges, token_types)
    for name, spec in MODELS.items():
        if not only or name in only:
            model_fixture(name, spec, tokens, merges, token_types)


if __name__ == "__main__":
    import sys
    main(sys.argv[1:])

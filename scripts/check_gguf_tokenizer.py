#!/usr/bin/env python3
"""circuitry's tokenizer of a GGUF model file against transformers' tokenizer of the same file.

    /work/scratch/peers/bin/python scripts/check_gguf_tokenizer.py FILE.gguf [CIRCUITRY]

200 varied texts (prose, numbers such as 2024 and 1,234.5, digits next to spaces, code,
punctuation, Unicode, emoji; seeded) go through `circuitry tokenize --model FILE.gguf`
(CIRCUITRY: the executable, build/release/bin/circuitry by default) and through
AutoTokenizer.from_pretrained(dir, gguf_file=...).encode(text, add_special_tokens=False). The
script prints how many give equal ids.

transformers builds a GGUF file's byte-level tokenizer with a plain ByteLevel pre-tokenizer
whatever tokenizer.ggml.pre says. For pre "smollm" and "starcoder" the model's own tokenizer.json
(and llama.cpp) first splits every digit off (Digits(individual_digits=True)); the script counts
the texts against that tokenizer too, transformers' with its pre-tokenizer replaced, which is
the one circuitry follows. The two differ only where a run of spaces precedes a digit.
Nothing is downloaded.
"""

import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from gguf import GGUFReader
from tokenizers import pre_tokenizers
from transformers import AutoTokenizer


def texts(count, seed=2024):
    fixed = ["When Mary and John went to the store, John gave a drink to", "The war lasted from the year 1732 to the year 17",
             "in 2024, prices rose 1,234.5%", "a  1", "x   22 y", "  7  ", "v1.2.3", "$1,000,000.00", "3.14e-10",
             "2024-01-31T12:00:00Z", "１２３ full width", "٣٤٥ arabic", "½ ¾ Ⅻ", "don't I'm we'll", "def f(x):\n    return x ** 2\n",
             "Café naïve résumé", "日本語のテキスト", "emoji 😀👍🏽 and 🇫🇷", "tabs\tand\r\nline ends", "<|im_start|>user\nhi<|im_end|>"]
    pools = ["the", " the", "Mary", " John", "store", "2024", "1", "22", "333", " 4", "  5", "1,234.5", ",", ".", "!", "?", "'s",
             "'t", " ", "  ", "\n", "\t", "é", "ü", "ß", "中", "文", "😀", "€", "½", "(", ")", "{", "}", "==", "->", "x", "y",
             "attention", " circuit", "GPT", "0x1F", "-", "%"]
    rng = random.Random(seed)
    out = fixed[:]
    while len(out) < count:
        out.append("".join(rng.choice(pools) for _ in range(rng.randint(2, 30))))
    return out


def main():
    path = Path(sys.argv[1]).resolve()
    circuitry = sys.argv[2] if len(sys.argv) > 2 else str(Path(__file__).resolve().parent.parent / "build/release/bin/circuitry")
    field = GGUFReader(str(path)).fields.get("tokenizer.ggml.pre")
    pre = bytes(field.parts[field.data[0]]).decode() if field else "default"
    hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    corpus = texts(200)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
        src.write_text("".join(json.dumps({"text": t}) + "\n" for t in corpus), encoding="utf-8")
        subprocess.run([circuitry, "tokenize", "--model", str(path), "--in", str(src), "--out", str(dst)], check=True)
        ours = [json.loads(line)["ids"] for line in dst.read_text(encoding="utf-8").splitlines()]
    theirs = [hf.encode(t, add_special_tokens=False) for t in corpus]
    equal = sum(a == b for a, b in zip(ours, theirs))
    print(f"{path.name}: tokenizer.ggml.pre {pre!r}; circuitry == transformers' GGUF tokenizer on {equal} of {len(corpus)} texts")
    if pre in ("smollm", "starcoder"):
        backend = hf.backend_tokenizer
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
        digits = [backend.encode(t, add_special_tokens=False).ids for t in corpus]
        equal_digits = sum(a == b for a, b in zip(ours, digits))
        print(f"  with the model's own pre-tokenizer (Digits then ByteLevel): equal on {equal_digits} of {len(corpus)}")
        show_differences(corpus, ours, digits, "tokenizers with Digits")
    show_differences(corpus, ours, theirs, "transformers' GGUF tokenizer")


def show_differences(corpus, ours, theirs, name, at_most=3):
    differing = [(t, a, b) for t, a, b in zip(corpus, ours, theirs) if a != b]
    for t, a, b in differing[:at_most]:
        print(f"  differs from {name}: {t!r}\n    circuitry {a}\n    {name} {b}")
    if len(differing) > at_most:
        print(f"  ... and {len(differing) - at_most} more")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""tiktoken's GPT-2 encoder on the text of bench_tokenizer.cpp (the tokenizer fixtures' texts,
joined by newlines, repeated to 4 MB), one thread, the median of 5 runs after a warm-up.

    ~/peers/bin/python benchmarks/bench_tokenizer_tiktoken.py   (pip install tiktoken tokenizers)
"""
import json
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from make_tokenizer_fixtures import tiktoken_gpt2  # noqa: E402  (offline: built from data/gpt2-bpe)


def main():
    enc = tiktoken_gpt2()
    cases = json.loads((ROOT / "tests/fixtures/tokenizer/cases.json").read_text(encoding="utf-8"))
    block = "".join(c["text"] + "\n" for c in cases).encode("utf-8")
    corpus = b""
    while len(corpus) < 4 << 20:
        corpus += block
    text = corpus.decode("utf-8")
    tokens = len(enc.encode(text, allowed_special="all"))  # warm-up
    times = []
    for _ in range(5):
        start = time.perf_counter()
        enc.encode(text, allowed_special="all")  # encode() runs on the calling thread only
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    mb = len(corpus) / 1e6
    print(f"tiktoken {__import__('tiktoken').__version__} ({enc.name}), one thread: {mb:.2f} MB -> {tokens} tokens")
    print(f"median_seconds={seconds:.4f} mb_per_second={mb / seconds:.2f}")


if __name__ == "__main__":
    main()

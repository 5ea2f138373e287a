#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizer/cases.json: varied texts and their GPT-2 token ids, from two
independent encoders that must agree on every text:
  - Hugging Face `tokenizers` (the engine of GPT2TokenizerFast): a BPE model from the repo's
    data/gpt2-bpe/vocab.json + merges.txt, GPT-2's ByteLevel pre-tokenizer
    (add_prefix_space=False, trim_offsets=True, use_regex=True), `<|endoftext|>` a special token;
  - tiktoken's "gpt2" encoding, or, offline, the same Encoding built from vocab.json (the ranks
    are the token ids; tiktoken.get_encoding("gpt2") would download the files).

    ~/peers/bin/python tests/make_tokenizer_fixtures.py   (pip install tokenizers tiktoken)

The tests read the committed JSON and need no Python.
"""
import json
import pathlib
import random

import tiktoken
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "data/gpt2-bpe"
OUT = ROOT / "tests/fixtures/tokenizer/cases.json"
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def hugging_face():
    tok = Tokenizer(models.BPE.from_file(str(DATA / "vocab.json"), str(DATA / "merges.txt")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return tok


def tiktoken_gpt2():
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception:
        byte_of = {c: b for b, c in bytes_to_unicode().items()}
        vocab = json.loads((DATA / "vocab.json").read_text(encoding="utf-8"))
        ranks = {bytes(byte_of[c] for c in token): i for token, i in vocab.items() if token != "<|endoftext|>"}
        return tiktoken.Encoding(name="gpt2-offline", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                                 special_tokens={"<|endoftext|>": 50256})


# Hand-picked texts: every rule of the pattern and the classes it depends on.
FIXED = [
    "", "a", " ", "  ", "hello", " hello", "Hello world", "Hello, world!", "  leading spaces", "trailing spaces   ",
    "a   b", "a \tb", "a\t\tb", "tab\tseparated\tvalues", "line one\nline two", "windows\r\nline\r\nends\r\n",
    "\n\n\nthree newlines", "a\n \nb", " \n", "\n ", "mixed \t \n whitespace \r\n  end",
    "don't", "I'm", "you're", "we've", "she'll", "he'd", "it's", "DON'T SHOUT", "'s", "''s", "' s", " 's", "'tis", "rock'n'roll",
    "'ll've'd're", "O'Brien's", "quote: 'x'",
    "12345", "3.14159", "1,000,000", "year 1999 to 2023", "v2.0.1", "0x1F", "route 66", "Ⅻ roman ⅻ", "١٢٣ arabic digits",
    "½ ¾ ² ³", "٣٤ and ٥", "①②③",
    "café", "naïve résumé", "Ångström", "Straße", "ÆØÅ æøå", "Ελληνικά", "русский текст", "עברית", "العربية",
    "हिन्दी", "ไทย", "日本語のテキスト", "中文文本，标点。", "한국어 텍스트", "ｆｕｌｌｗｉｄｔｈ", "e\u0301 combining accent",
    "a\u0308\u0301 stacked marks", "Ǆemo ǅ titlecase",
    "x\U00013609're (a Unicode 16 letter)", "kawi \U00011F04\U00011F05 letters", "!\U0002FFFD! unassigned", "!\ue000! private",
    "😀", "emoji 😀😃😄", "👨‍👩‍👧‍👦 family", "👍🏽 skin tone", "🏳️‍🌈 flag", "🇫🇷🇩🇪 flags", "❤️ heart", "a😀b",
    "zero\u200bwidth", "zero \u200b space", "nbsp\u00a0here", "nbsp \u00a0 both", "\u00a0\u00a0x", "x\u00a0",
    "thin\u2009space", "ideographic\u3000space", "\u2028line sep\u2029para sep", "next\u0085line", "bom\ufeffinside",
    "soft\u00adhyphen", "\u180emongolian", "word\u2060joiner", "ctrl\x00\x01\x1f\x7f", "\x0bvt\x0cff", "\x1cfs\x1dgs\x1erx\x1fus",
    "def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "if __name__ == \"__main__\":\n    main()", "<html><body class=\"x\">Hi</body></html>", "SELECT * FROM t WHERE id=1;",
    "https://example.com/path?q=1&r=two#frag", "user@example.org", "C:\\Users\\me\\file.txt", "$HOME/.bashrc && ls -la",
    "a+b=c; d-e*f/g", "!!!???...", "---===+++", "(((nested)))", "~`@#$%^&*_|\\", "«guillemets» „quotes“ “curly”",
    "<|endoftext|>", "a<|endoftext|>b", "Hello <|endoftext|> world", "<|endoftext|><|endoftext|>",
    "text\n<|endoftext|>\nmore", "<|endoftext", "<|endoftext|", "endoftext|>", "< |endoftext|>",
    "The quick brown fox jumps over the lazy dog.", "When Mary and John went to the store, John gave a drink to",
    "The war lasted from the year 1732 to the year 17",
    " " * 40 + "x", "\t" * 10 + "y", "\n" * 20, "a" * 300, "1" * 300, "ab" * 200, "!" * 200, " " * 100,
    "x" + " " * 65 + "y", "😀" * 50, "é" * 100,
]


def random_texts(rng, count):
    pools = {
        "ascii": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "digits": "0123456789",
        "punct": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        "space": [" ", " ", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2009", "\u200b"],
        "accents": "àáâãäåçèéêëìíîïñòóôõöùúûüýÿßÀÉÎÕÜŁłŒœŠšŽž",
        "greek_cyrillic": "αβγδεζηθικλμνξοπρστυφχψωЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ",
        "cjk": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年日本語漢字ひらがなカタカナ한국어",
        "emoji": ["😀", "🎉", "👍", "👍🏿", "❤️", "🔥", "👨‍💻", "👩‍🚀", "🇯🇵", "✨", "🙏", "🧑‍🤝‍🧑"],
        "symbols": "€£¥©®™°±×÷§¶•…‰′″←→↑↓∀∂∃∅∇∈∑√∞≈≠≤≥─│┌┐",
        "words": ["the", " the", "The", "of", "and", "to", "in", "is", "it's", "don't", "we'll", "they're", "I've",
                  "circuit", "transformer", "attention", "tokenizer", "GPT", "2", "2023", "x", "y", "foo", "bar"],
        "specials": ["<|endoftext|>", "<|", "|>", "endoftext"],
    }
    weights = {"ascii": 30, "digits": 6, "punct": 8, "space": 14, "accents": 5, "greek_cyrillic": 4, "cjk": 5,
               "emoji": 4, "symbols": 3, "words": 20, "specials": 1}
    names = list(weights)
    texts = []
    for k in range(count):
        length = rng.choice([3, 8, 20, 50, 120]) if k % 25 else rng.randint(800, 3000)
        parts = []
        for _ in range(length):
            pool = pools[rng.choices(names, [weights[n] for n in names])[0]]
            piece = rng.choice(pool)
            if isinstance(pool, str) and rng.random() < 0.5:
                piece += "".join(rng.choice(pool) for _ in range(rng.randint(1, 6)))
            parts.append(piece)
        texts.append("".join(parts))
    return texts


def main():
    hf, tk = hugging_face(), tiktoken_gpt2()
    texts = FIXED + random_texts(random.Random(20231), 300)
    cases = []
    for text in texts:
        a = hf.encode(text).ids
        b = tk.encode(text, allowed_special="all")
        assert a == b, f"Hugging Face and tiktoken disagree on {text!r}:\n{a}\n{b}"
        assert tk.decode_bytes(b) == text.encode("utf-8")
        cases.append({"text": text, "ids": a})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]\n")
    print(f"{OUT}: {len(cases)} texts, {sum(len(c['ids']) for c in cases)} tokens, Hugging Face and tiktoken agree")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the tokenizer fixtures, varied texts and their token ids:

tests/fixtures/tokenizer/cases.json: GPT-2's ids, from two independent encoders that must agree
on every text:
  - Hugging Face `tokenizers` (the engine of GPT2TokenizerFast): a BPE model from the repo's
    data/gpt2-bpe/vocab.json + merges.txt, GPT-2's ByteLevel pre-tokenizer
    (add_prefix_space=False, trim_offsets=True, use_regex=True), `<|endoftext|>` a special token;
  - tiktoken's "gpt2" encoding, or, offline, the same Encoding built from vocab.json (the ranks
    are the token ids; tiktoken.get_encoding("gpt2") would download the files).

tests/fixtures/tokenizer/{pythia,llama3,qwen2,smollm2}/: a TINY byte-level BPE tokenizer.json
trained here with Hugging Face `tokenizers` in the style of each family's real tokenizer.json (its
normalizer, pre-tokenizer, BPE options, added tokens and missing byte tokens; see STYLES), and
cases.json, that tokenizer's ids for many texts (tokenizers' encode(text, add_special_tokens=False)).

    ~/peers/bin/python tests/make_tokenizer_fixtures.py   (pip install tokenizers tiktoken)

Deterministic: a second run writes identical files. The tests read the committed JSON and
need no Python.
"""
import json
import pathlib
import random

import tiktoken
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "data/gpt2-bpe"
FIXTURES = ROOT / "tests/fixtures/tokenizer"
OUT = FIXTURES / "cases.json"
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# The Split patterns of Llama 3's tokenizer.json (tiktoken's cl100k_base pattern) and Qwen2's
# (the same with single digits), as transformers writes them (convert_slow_tokenizer.py's
# TikTokenConverter, models/qwen2/tokenization_qwen2.py).
LLAMA3_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""


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


GPT2_SPECIALS = ["<|endoftext|>", "<|", "|>", "endoftext"]


def random_texts(rng, count, specials=GPT2_SPECIALS, extra_pools=None):
    """count texts of random pieces; extra_pools {name: (pool, weight)} adds pools (GPT-2's
    texts have none, so that its cases stay the ones committed)."""
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
        "specials": specials,
    }
    weights = {"ascii": 30, "digits": 6, "punct": 8, "space": 14, "accents": 5, "greek_cyrillic": 4, "cjk": 5,
               "emoji": 4, "symbols": 3, "words": 20, "specials": 1}
    for name, (pool, weight) in (extra_pools or {}).items():
        pools[name], weights[name] = pool, weight
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


# The training text of the tiny tokenizers: prose, code, contractions in mixed case, numbers,
# accents (precomposed and decomposed), CJK, emoji, \r\n line ends, tabs and runs of spaces.
TRAINING_TEXT = """The quick brown fox jumps over the lazy dog. When Mary and John went to the store, John gave a drink to Mary.
I'm sure they're here; we've seen it, you'll see. DON'T SHOUT! I'M FINE, WE'RE FINE, THEY'LL COME. It'S odd, isn'T it? She'd know.
He said: "don't", "won't", "can't", "shouldn't've". O'Brien's dog's bone. rock'n'roll, 'tis the season.
The war lasted from the year 1732 to the year 1789. Call 555-0123 or +1 (800) 123-4567. Pi is 3.14159265358979.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 100 1000 12345 1,000,000 2023-11-05 v2.0.1 0x1F 1e-9 42%.
def forward(self, x):\r\n    h = self.attn(self.ln_1(x))\r\n    return x + h\r\n\r\n
for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n
if __name__ == "__main__":\n    main()\n
\tTabs\tseparate\tvalues\t1\t2\t3\n    four spaces        eight spaces                sixteen.
Café, naïve résumé, Ångström, Straße, ÆØÅ æøå. Cafe\u0301 nai\u0308ve re\u0301sume\u0301 (decomposed).
Ελληνικά κείμενα, русский текст, עברית, العربية, हिन्दी, ไทย.
日本語のテキストです。中文文本，标点。한국어 텍스트입니다. 東京、大阪、京都。
Emoji: 😀😃😄 👍🏽 ❤️ 🎉 👨‍👩‍👧‍👦 🇫🇷 ✨🔥 and text 😀 between.
windows\r\nline\r\nends\r\n and unix\nline\nends\n and old mac\rends\r.
  leading spaces, trailing spaces   , a   b   c,    x    y.
<html><body class="x">Hi</body></html> SELECT * FROM t WHERE id=1; https://example.com/path?q=1&r=two#frag
"""

# The styles, after each family's real tokenizer.json (EleutherAI/pythia-*, meta-llama/Meta-Llama-3-8B,
# Qwen/Qwen2-0.5B): "added" are added tokens (content, special); "first" puts the special ones
# first in the vocabulary (ids 0, 1 as in GPT-NeoX-20B's), else they follow the learned tokens.
STYLES = {
    # GPT-NeoX-20B: NFC, GPT-2's ByteLevel pre-tokenizer, <|endoftext|> 0 and <|padding|> 1, and
    # runs of spaces as added tokens that are not special but normalized (matched in the
    # normalized text, before pre-tokenization), which its model.vocab also lists in plain spaces.
    "pythia": dict(
        normalizer=normalizers.NFC(),
        pre_tokenizer=pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        post_processor=processors.ByteLevel(trim_offsets=True),
        model=dict(),
        specials=["<|endoftext|>", "<|padding|>"], first=True,
        spaces=range(8, 1, -1)),
    # Llama 3: no normalizer, Split(pattern) + ByteLevel(use_regex=false), ignore_merges, the
    # special tokens after the learned ones, a BOS template as post-processor.
    "llama3": dict(
        normalizer=None,
        pre_tokenizer=pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)]),
        post_processor="bos",
        model=dict(ignore_merges=True),
        specials=["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                  "<|reserved_special_token_1|>", "<|start_header_id|>", "<|end_header_id|>",
                  "<|reserved_special_token_2|>", "<|eot_id|>"], first=False, spaces=()),
    # Qwen2: NFC, Split(pattern with single digits) + ByteLevel(use_regex=false).
    "qwen2": dict(
        normalizer=normalizers.NFC(),
        pre_tokenizer=pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)]),
        post_processor=processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        model=dict(),
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], first=False, spaces=()),
    # SmolLM2 (HuggingFaceTB/SmolLM2-*, StarCoder2's pre-tokenizer): an empty normalizer Sequence,
    # Digits(individual_digits) then GPT-2's ByteLevel, byte_fallback on a byte-level BPE (which
    # changes nothing: every byte is a symbol), the special tokens first, and the 21 byte tokens
    # its vocabulary lacks (bytes 0x04 ... 0xFF below; its GGUF file's tokens show the same 21).
    "smollm2": dict(
        normalizer=normalizers.Sequence([]),
        pre_tokenizer=pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)]),
        post_processor=processors.ByteLevel(trim_offsets=True),
        model=dict(byte_fallback=True),
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], first=True, spaces=(),
        missing_bytes=[0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2] + list(range(0xF5, 0x100))),
}
VOCAB_SIZE = 600  # 256 bytes + a few hundred merges + the special tokens

# Texts for every byte-level style besides FIXED: what the Llama 3 / Qwen2 patterns and NFC add.
STYLE_TEXTS = [
    "'S 'T 'RE 'Ve 'M 'LL 'D 'd 'll", "DON'T I'M WE'RE THEY'LL SHE'D IT'S YOU'VE", "it'S we'Re", "'ſ long s", "'ſa",
    "x'Sy", "''S", "'", "'1", "'\u00e9", "'\u0301",
    "1", "12", "123", "1234", "1234567", "12345678901", "１２３４５", "٣٤٥٦ ٧", "Ⅻ½¼²", "a1b22c333d4444", " 123 456",
    "\r\n", "\r", "\n\r", "\r\n\r\n", " \r\n", "  \r\n  x", "a\r\nb", "a\rb", "!!!\r\n", "!!!\n\n\n", "x \n\n", " \n \n ",
    "\t\tword", "\tword", "\u00a0word", "\u3000word", "(word", "😀word", "😀 word", "  word", "   word", "\n word",
    " \u00a0 x", "a\t b", "\t\n\t", "x\u2028y", "x\u0085y", " !", " !!\n", "  !", "word!\r\n", "end   ",
    "e\u0301", "Cafe\u0301", "a\u0308\u0301", "a\u0301\u0316", "o\u0302\u0323", "o\u0323\u0302", "\u1100\u1161",
    "\u1100\u1161\u11a8", "\uac00\u11a8", "\u212b", "\u2126 ohm", "\u0958", "\u0344", "\u0f73", "\u1e9b\u0323",
    "\U00011935\U00011930 (a Unicode 13 composition)", "e\u1ac1\u0301 (a Unicode 14 mark)", "\u0301 leading mark",
    "x\u0301\u0301\u0301\u0301", "\u00c5\u030a", "A\u030a", "\u0041\u0301\u0328", "\u1e0a\u0323",
    "<|endoftext|>", "<|padding|>", "<|begin_of_text|>x<|end_of_text|>", "<|eot_id|><|eot_id|>", "<|im_start|>user\nhi<|im_end|>",
    "<|reserved_special_token_0|><|reserved_special_token_1|>", "<|start_header_id|>", "<|endoftext", "<|im_", "x<|padding|> y",
    "circuitry", " circuitry", "the circuitry of circuitryx", " Circuitry",
    "a  b", "a   b", "a         b", " " * 20, "x" + " " * 17 + "y", "  \u00a0  ", "e\u0301<|endoftext|>\u0301", "a<|im_end|>\u0301",
]
STYLE_POOLS = {
    "marks": (["e\u0301", "a\u0308", "\u0301", "\u0316\u0301", "o\u0302\u0323", "\u1100\u1161", "\u1100\u1161\u11a8",
               "\u212b", "\u2126", "\u0958", "\U00011935\U00011930", "\u0344", "\u1ac1"], 3),
    "contractions": (["'S", "'s", "'T", "'RE", "'Ve", "'M", "'LL", "'d", "'\u017f", "DON'T", "I'M", "We'Re"], 3),
    "newlines": (["\r\n", "\r", "\n\r", " \r\n", "\r\n\r\n", "\t\r\n", "   "], 3),
    "numbers": (["12345", "１２３", "٣٤٥", "½", "Ⅻ", "1,234.5"], 2),
}
# What the digits-one-by-one pre-tokenizer adds: digits next to spaces, letters, symbols.
DIGIT_TEXTS = [
    "2024", " 2024", "in 2024,", "1,234.5", " 1,234.5 ", "a  1", "a   12", "x 1 y 22 z 333", "  7", "7  ", "7  x",
    "abc123def", "v1.2.3-rc4", "$1,000,000.00", "10% of 250", "3.14e-10", "(555) 123-4567", "2024-01-31T12:00:00Z",
    "１２３ full width", "a١٢b", "½ + ¼ = ¾", "Ⅻ12", "x²+y²", "0", "00", "0.0", " 0 ", "9\n9", "1\t2", "1\r\n2",
    "Room 101's door", "it's 5'o clock", "#1 and #22", "a.1b.22c", "😀1😀", "é1é", "1 2 3 4 5 6 7 8 9 10",
]


def train(style):
    """A tiny tokenizer of one style, trained on TRAINING_TEXT, as its tokenizer.json."""
    spec = STYLES[style]
    tok = Tokenizer(models.BPE(**spec["model"]))
    if spec["normalizer"] is not None:
        tok.normalizer = spec["normalizer"]
    tok.pre_tokenizer = spec["pre_tokenizer"]
    tok.decoder = decoders.ByteLevel()
    missing = {bytes_to_unicode()[b] for b in spec.get("missing_bytes", [])}
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, show_progress=False,
                                  initial_alphabet=[c for c in pre_tokenizers.ByteLevel.alphabet() if c not in missing],
                                  special_tokens=spec["specials"] if spec["first"] else [])
    tok.train_from_iterator(TRAINING_TEXT.split("\n"), trainer)
    if spec["model"].get("ignore_merges"):
        # Llama 3's vocabulary, converted from tiktoken's ranks, has tokens that merging a word's
        # bytes by rank does not rebuild; ignore_merges gives such a word its token whole. A
        # trained vocabulary has none, so add one: " circuitry" (in BPE "Ġcirc", "uit", ...).
        j = json.loads(tok.to_str())
        j["model"]["vocab"]["\u0120circuitry"] = len(j["model"]["vocab"])
        tok = Tokenizer.from_str(json.dumps(j))
    if not spec["first"]:
        tok.add_special_tokens(spec["specials"])
    tok.add_tokens([AddedToken(" " * k, special=False, normalized=True) for k in spec["spaces"]])
    if spec["post_processor"] == "bos":
        bos = spec["specials"][0]
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
            processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1",
                                          special_tokens=[(bos, tok.token_to_id(bos))])])
    else:
        tok.post_processor = spec["post_processor"]
    j = json.loads(tok.to_str())
    for t in j["added_tokens"]:  # as in GPT-NeoX-20B's file: the space runs in model.vocab too
        if not t["special"]:
            j["model"]["vocab"][t["content"]] = t["id"]
    assert j["model"]["ignore_merges"] == spec["model"].get("ignore_merges", False)
    assert j["model"]["byte_fallback"] == spec["model"].get("byte_fallback", False)
    assert not missing & set(j["model"]["vocab"]), "a byte token meant to be missing is in the vocabulary"
    return json.dumps(j, ensure_ascii=False, indent=1)


def write_cases(path, cases):
    with path.open("w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]\n")


def byte_level_style(style):
    """tests/fixtures/tokenizer/<style>/: tokenizer.json and cases.json, [{"text", "ids"}] and
    "decoded" where decoding the ids does not give the text back (the text NFC-normalized), or
    "missing_byte" where the text needs a byte the vocabulary has no token for."""
    out = FIXTURES / style
    out.mkdir(parents=True, exist_ok=True)
    text = train(style)
    (out / "tokenizer.json").write_text(text, encoding="utf-8")
    tok = Tokenizer.from_str(text)
    rng = random.Random(20231 + len(style))
    specials = STYLES[style]["specials"] + ["<|", "|>", "<|endoftext|>"]
    texts = FIXED + STYLE_TEXTS + DIGIT_TEXTS + random_texts(rng, 100, specials, STYLE_POOLS)
    missing = STYLES[style].get("missing_bytes", [])
    cases = []
    for t in texts:
        ids = tok.encode(t, add_special_tokens=False).ids
        case = {"text": t, "ids": ids}
        needed = [b for b in t.encode("utf-8") if b in missing]
        if needed:  # tokenizers drops the byte; circuitry's encode is an error naming it
            case["missing_byte"] = f"0x{needed[0]:02X}"
            cases.append(case)
            continue
        decoded = tok.decode(ids, skip_special_tokens=False)
        if decoded != t:
            assert STYLES[style]["normalizer"] is not None, f"{style} does not decode {t!r} back"
            case["decoded"] = decoded
        cases.append(case)
    write_cases(out / "cases.json", cases)
    report = f"{out}: {len(tok.get_vocab())} tokens, {len(cases)} texts, {sum(len(c['ids']) for c in cases)} ids"
    if missing:
        report += f", {sum('missing_byte' in c for c in cases)} texts need a missing byte token"
    if STYLES[style]["model"].get("ignore_merges"):  # how many texts show ignore_merges at work
        j = json.loads(text)
        j["model"]["ignore_merges"] = False
        plain = Tokenizer.from_str(json.dumps(j))
        differ = sum(plain.encode(t, add_special_tokens=False).ids != c["ids"] for t, c in zip(texts, cases))
        assert differ > 0, "no text tells ignore_merges apart"
        report += f", {differ} of them encoded differently without ignore_merges"
    print(report)


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
    write_cases(OUT, cases)
    print(f"{OUT}: {len(cases)} texts, {sum(len(c['ids']) for c in cases)} tokens, Hugging Face and tiktoken agree")
    for style in STYLES:
        byte_level_style(style)


if __name__ == "__main__":
    main()

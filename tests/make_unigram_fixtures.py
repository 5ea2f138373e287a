#!/usr/bin/env python3
"""Writes the SentencePiece Unigram and tokenizer.model fixtures (text/unigram_*.hpp,
text/sentencepiece_model.hpp): tiny models trained here with the `sentencepiece` library on the
text below, and the ids the reference tokenizers give for varied texts.

tests/fixtures/tokenizer/<name>/:
  uni-fallback   Unigram, byte_fallback, user-defined pieces <sep> and <cls>, SentencePiece's
                 default whitespace handling (remove_extra_whitespaces, add_dummy_prefix);
                 tokenizer.json from transformers' SpmConverter.build_tokenizer_from_spm_proto
                 (the converter that follows the model's normalizer spec);
  uni-classic    Unigram, no byte fallback (unknown characters are <unk>), extra whitespace kept;
                 tokenizer.json from transformers' classic SpmConverter (T5, XLNet and
                 friends: Strip, Replace(" {2,}"), Metaspace; control and user-defined pieces
                 as added tokens);
  bpe-model      BPE, byte_fallback, one user-defined piece, default whitespace handling; only
                 tokenizer.model (a directory with no tokenizer.json).
Each has tokenizer.model and model_cases.json ([{"text", "ids"}]: SentencePieceProcessor.encode,
no BOS); the Unigram ones also tokenizer.json and cases.json (Hugging Face tokenizers'
encode(text, add_special_tokens=False)).

    source /work/scratch/peers/bin/activate   # pip install sentencepiece protobuf tokenizers transformers
    python tests/make_unigram_fixtures.py

Deterministic: a second run writes identical files. The tests read the committed files and need
no Python.
"""
import io
import json
import pathlib
import random
import types

import sentencepiece as spm
from tokenizers import Tokenizer
from transformers.convert_slow_tokenizer import SpmConverter
from sentencepiece import sentencepiece_model_pb2 as model_pb2

FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures/tokenizer"

TRAINING_TEXT = """The quick brown fox jumps over the lazy dog. When Mary and John went to the store, John gave a drink to Mary.
Then, Alice and Bob went to the garden. Bob gave a ring to Alice, and Alice gave a book to Bob.
The war lasted from the year 1732 to the year 1789; prices rose 12.5% in 2023 and 3,400 people came.
def forward(self, x):
    return self.attn(self.ln_1(x)) + x
for (int i = 0; i < n; ++i) { sum += a[i]; }
Le café est très bon, naïve résumé à la française. Straße, Ångström, El niño.
日本語のテキストと中文文本。한국어 텍스트도 있습니다.
Emoji: 😀 🎉 👍 — punctuation: "quotes", 'single', (parens), [brackets], {braces}!?
Circuits in transformers: attention heads, MLPs and the residual stream carry one behaviour.
<sep> separates parts <cls> classifies; tokens and pieces, words and sentences.
"""

TEXTS = [
    "", "a", " ", "  ", "hello", " hello", "Hello world", "Hello, world!", "  leading spaces", "trailing spaces   ",
    "a   b", "a \tb", "tab\tseparated", "line one\nline two", "\n\nHello", " \n ", "end ", "   ",
    "When Mary and John went to the store, John gave a drink to", " Mary", "Mary", "The year 1732 to 1789.",
    "12345", "3.14159", "1,000,000", "!!!???...", "(((nested)))", "a+b=c; d-e*f/g", "~`@#$%^&*_|\\",
    "café", "naïve résumé", "Ångström", "Straße", "e\u0301 combining accent", "Ελληνικά", "русский текст",
    "日本語のテキスト", "中文文本，标点。", "한국어 텍스트", "😀", "emoji 😀🎉 parrot 🦜", "a😀b", "🦜🦜 two parrots",
    "rare ❖ ⌘ ⍟ ☃", "unknown \u0f00\u0f01 run", "\u2581 already escaped", "x\u2581y", "\u2581\u2581",
    "<sep>", "a<sep>b", " <sep> ", "<cls><sep>", "x <cls> y", "<s>", "</s>", "<unk>", "<0x41>", "a<s>b",
    "def f(x):\n    return x ** 2\n", "The quick brown fox jumps over the lazy dog.",
    "nbsp\u00a0here", "zero\u200bwidth", "ideographic\u3000space", "ｆｕｌｌｗｉｄｔｈ", "ab" * 40, " " * 10 + "x",
]


def random_texts(rng, count):
    pools = ["abcdefghijklmnopqrstuvwxyz ", "ABCXYZ", "0123456789", ".,;:!?()\"'-", "   \t\n", "éèàüößñç",
             "日本語中文한국어", "😀🎉👍🦜", ["the ", "Mary ", "John ", "store", "<sep>", "<cls>", "\u2581"]]
    texts = []
    for _ in range(count):
        texts.append("".join(rng.choice(rng.choice(pools)) for _ in range(rng.choice([5, 20, 60]))))
    return texts


def train(name, model_type, vocab_size, byte_fallback, user_defined, remove_extra_whitespaces):
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TRAINING_TEXT.split("\n") * 4), model_writer=buf, model_type=model_type,
        vocab_size=vocab_size, byte_fallback=byte_fallback, character_coverage=0.98 if byte_fallback else 1.0,
        normalization_rule_name="identity", remove_extra_whitespaces=remove_extra_whitespaces,
        user_defined_symbols=user_defined, hard_vocab_limit=False, num_threads=1, minloglevel=2)
    out = FIXTURES / name
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.model").write_bytes(buf.getvalue())
    return out


def write_cases(path, cases):
    with path.open("w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n]\n")


def texts_for(name):
    return TEXTS + random_texts(random.Random(len(name)), 30)


def write_model_cases(out):
    sp = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model"))
    cases = [{"text": t, "ids": sp.encode(t)} for t in texts_for(out.name)]
    write_cases(out / "model_cases.json", cases)
    print(f"{out}: {sp.get_piece_size()} pieces, {len(cases)} texts (sentencepiece's ids)")
    return sp


def write_json_cases(out, tokenizer, sp):
    (out / "tokenizer.json").write_text(json.dumps(json.loads(tokenizer.to_str()), ensure_ascii=False, indent=1) + "\n",
                                        encoding="utf-8")
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts_for(out.name)]
    write_cases(out / "cases.json", cases)
    same = sum(c["ids"] == sp.encode(c["text"]) for c in cases)
    print(f"{out}: tokenizer.json, {len(cases)} texts; sentencepiece gives the same ids on {same}")


def proto_of(out):
    m = model_pb2.ModelProto()
    m.ParseFromString((out / "tokenizer.model").read_bytes())
    return m


def main():
    out = train("uni-fallback", "unigram", 520, True, ["<sep>", "<cls>"], True)
    sp = write_model_cases(out)
    proto = proto_of(out)
    vocab = [(p.piece, p.score) for p in proto.pieces]
    write_json_cases(out, SpmConverter.build_tokenizer_from_spm_proto(proto, vocab), sp)

    out = train("uni-classic", "unigram", 300, False, ["<sep>"], False)
    sp = write_model_cases(out)
    original = types.SimpleNamespace(vocab_file=str(out / "tokenizer.model"), add_prefix_space=True, legacy=True)
    write_json_cases(out, SpmConverter(original).converted(), sp)

    out = train("bpe-model", "bpe", 560, True, ["<sep>"], True)
    write_model_cases(out)


if __name__ == "__main__":
    main()

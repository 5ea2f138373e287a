#!/usr/bin/env python3
"""Writes the SentencePiece tokenizer fixtures (text/sentencepiece_*.hpp), varied texts and their
token ids, from two tiny SentencePiece BPE models trained here with the `sentencepiece` library
(byte_fallback, digits split, whitespace-only pieces allowed, identity normalization, extra
whitespace kept: the settings of Llama 2's and Gemma's models that matter for ids):

  llama model: ids 0 <unk>, 1 <s>, 2 </s>, add_dummy_prefix (a '\u2581' before the text);
  gemma model: ids 0 <pad>, 1 <eos>, 2 <bos>, 3 <unk>, no dummy prefix, two user-defined pieces.

tests/fixtures/tokenizer/<style>/tokenizer.json + cases.json ([{"text", "ids"}], the ids of
Hugging Face tokenizers' encode(text, add_special_tokens=False)) for the tokenizer.json files
transformers writes for these families (convert_slow_tokenizer.py, LlamaConverter and
GemmaConverter; the merges ordered by the scores of the pieces they make, as transformers 4.x
did and the Hub's Llama 2 / Mistral files have them):
  spm-legacy     Llama 2: normalizer Sequence [Prepend('\u2581'), Replace(' ', '\u2581')], no pre_tokenizer;
  spm-metaspace  Mistral (legacy false): pre_tokenizer Metaspace(prepend_scheme first, split false);
  spm-split      tokenizers' own Metaspace defaults: prepend_scheme always, split true (each word
                 begins at a '\u2581');
  spm-gemma      Gemma: normalizer Replace(' ', '\u2581'), pre_tokenizer Split(' ', MergedWithPrevious),
                 unk <unk> at 3, user-defined pieces as added tokens.

tests/fixtures/tokenizer/gguf-spm-llama/, gguf-spm-gemma/: vocab.gguf, a GGUF file with no tensors
whose metadata is llama.cpp's SentencePiece tokenizer (tokenizer.ggml.model "llama": tokens,
scores, token_type; add_space_prefix true for llama, false for gemma; bos/eos ids), as
convert_hf_to_gguf.py writes it, and cases.json: the ids of the sentencepiece library itself on
the same model (SentencePieceProcessor.encode), which llama.cpp's SPM tokenizer reproduces.

    /work/scratch/peers/bin/python tests/make_sentencepiece_fixtures.py
    (pip install sentencepiece protobuf tokenizers transformers gguf tiktoken)

Deterministic: a second run writes identical files. The tests read the committed files and need
no Python.
"""
import io
import json
import pathlib
import random
import sys
import types

import gguf
import sentencepiece as spm
from tokenizers import Tokenizer
from transformers.convert_slow_tokenizer import GemmaConverter, LlamaConverter, generate_merges

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import make_tokenizer_fixtures as base  # noqa: E402  (its texts)

FIXTURES = base.FIXTURES
WORK = pathlib.Path("/tmp/circuitry-sentencepiece")

# Texts that exercise what differs between the styles: leading, trailing and repeated spaces,
# newlines and tabs, digits, byte fallback (characters the models left out), and the pieces
# around added tokens.
SPM_TEXTS = [
    " Mary", "Mary", "  Mary", " When Mary and John went to the store, John gave a drink to",
    "\u2581 already escaped", "x\u2581y", "\u2581", "\u2581\u2581", " \u2581", "The year 1732 to 1789.",
    "\n", "\n\nHello", " \n ", "a\tb\t\tc", "end ", "end  ", "   ", "emoji 🦜 parrot", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "rare ❖ ⌘ ⍟ ☃",
    "<unk>", "<s>", "</s>", "<s> after", "a<s>b",
]
GEMMA_USER_DEFINED = ["<start_of_turn>", "<end_of_turn>"]
# Names, places and objects of the IOI generator (text/ioi.hpp), often enough in the training text
# that they become single tokens ('\u2581Mary'), so the tests can generate IOI on these vocabularies.
IOI_LINE = "Then, Aaron, Adam, Alan, Alex, Alice and Mary went to the store. John gave a ring and a drink to Amy."


def training_lines():
    rng = random.Random(7)
    return base.TRAINING_TEXT.split("\n") * 3 + [IOI_LINE] * 30 + [t for t in base.random_texts(rng, 300) if len(t) < 400]


def train(gemma):
    buf = io.BytesIO()
    ids = dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>") if gemma \
        else dict(unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(training_lines()), model_writer=buf, model_type="bpe", vocab_size=1000 if gemma else 1200,
        byte_fallback=True, character_coverage=0.995, normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=not gemma, split_digits=True, allow_whitespace_only_pieces=True, hard_vocab_limit=False,
        user_defined_symbols=GEMMA_USER_DEFINED if gemma else [], num_threads=1, minloglevel=2, **ids)
    WORK.mkdir(parents=True, exist_ok=True)
    path = WORK / ("gemma.model" if gemma else "llama.model")
    path.write_bytes(buf.getvalue())
    return path


class Extractor:
    """The vocabulary and merges of a SentencePiece BPE model, the merges ordered by the scores of
    the pieces they make (transformers 4.x's SentencePieceExtractor.extract(vocab_scores))."""

    def __init__(self, model):
        self.sp = spm.SentencePieceProcessor(model_file=str(model))

    def extract(self, vocab_scores=None):
        vocab = {self.sp.id_to_piece(i): i for i in range(self.sp.get_piece_size())}
        return vocab, generate_merges(vocab, vocab_scores)


class Llama(LlamaConverter):
    SpmExtractor = Extractor


class Gemma(GemmaConverter):
    SpmExtractor = Extractor


def converted(converter, model, **options):
    sp = spm.SentencePieceProcessor(model_file=str(model))
    original = types.SimpleNamespace(vocab_file=str(model), convert_ids_to_tokens=sp.id_to_piece,
                                     pad_token="<pad>", eos_token="<eos>", bos_token="<bos>", **options)
    return json.loads(converter(original).converted().to_str())


def write_json(path, j):
    path.write_text(json.dumps(j, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def texts_for(style):
    rng = random.Random(4099 + len(style))
    return base.FIXED + SPM_TEXTS + base.random_texts(rng, 100, ["<s>", "</s>", "<unk>", "<start_of_turn>"])


def json_style(style, j, sp):
    out = FIXTURES / style
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "tokenizer.json", j)
    tok = Tokenizer.from_str((out / "tokenizer.json").read_text(encoding="utf-8"))
    texts = texts_for(style)
    cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts]
    base.write_cases(out / "cases.json", cases)
    same = sum(c["ids"] == sp.encode(c["text"]) for c in cases)
    print(f"{out}: {len(j['model']['vocab'])} tokens, {len(cases)} texts; sentencepiece gives the same ids on {same}")


TOKEN_TYPE = {"normal": 1, "unknown": 2, "control": 3, "user": 4, "unused": 5, "byte": 6}


def gguf_style(style, model, add_space_prefix, bos, eos):
    sp = spm.SentencePieceProcessor(model_file=str(model))
    out = FIXTURES / style
    out.mkdir(parents=True, exist_ok=True)
    tokens, scores, kinds = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        kind = "unknown" if sp.is_unknown(i) else "control" if sp.is_control(i) else "byte" if sp.is_byte(i) \
            else "unused" if sp.is_unused(i) else "user" if tokens[-1] in GEMMA_USER_DEFINED else "normal"
        kinds.append(TOKEN_TYPE[kind])
    w = gguf.GGUFWriter(str(out / "vocab.gguf"), arch="llama")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(kinds)
    w.add_add_space_prefix(add_space_prefix)
    w.add_bos_token_id(bos)
    w.add_eos_token_id(eos)
    w.add_add_bos_token(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    texts = [t for t in texts_for(style) if not any(s in t for s in ["<s>", "</s>", "<unk>", "<pad>", "<eos>", "<bos>"] + GEMMA_USER_DEFINED)]
    cases = [{"text": t, "ids": sp.encode(t)} for t in texts]
    base.write_cases(out / "cases.json", cases)
    print(f"{out}: {len(tokens)} tokens, {len(cases)} texts (sentencepiece's ids)")


def main():
    llama, gemma = train(False), train(True)
    sp_llama, sp_gemma = (spm.SentencePieceProcessor(model_file=str(m)) for m in (llama, gemma))
    json_style("spm-legacy", converted(Llama, llama, legacy=True), sp_llama)
    json_style("spm-metaspace", converted(Llama, llama, legacy=False), sp_llama)
    split = converted(Llama, llama, legacy=False)
    split["pre_tokenizer"].update(prepend_scheme="always", split=True)
    json_style("spm-split", split, sp_llama)
    json_style("spm-gemma", converted(Gemma, gemma), sp_gemma)
    gguf_style("gguf-spm-llama", llama, True, 1, 2)
    gguf_style("gguf-spm-gemma", gemma, False, 2, 1)


if __name__ == "__main__":
    main()

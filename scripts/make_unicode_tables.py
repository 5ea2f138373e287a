#!/usr/bin/env python3
"""Writes the Unicode tables of circuitry's tokenizers:

  include/circuitry/text/unicode_classes.hpp: the character classes the pre-tokenization
    patterns (GPT-2's, Llama 3's, Qwen2's) need, as a compact two-level table over every
    code point;
  include/circuitry/text/unicode_normalization.hpp: canonical decomposition and composition
    (NFC, the normalizer of Pythia's and Qwen2's tokenizer.json), as Hugging Face tokenizers
    computes it (below).

    pip install unicodedata2==16.0.0 tokenizers && python3 scripts/make_unicode_tables.py

GPT-2's pattern (encoder.py) uses three Unicode classes:
  \\p{L}  general category L* (Lu, Ll, Lt, Lm, Lo)
  \\p{N}  general category N* (Nd, Nl, No)
  \\s     the White_Space property (what Oniguruma, used by Hugging Face tokenizers, and
         Rust's regex crate, used by tiktoken, both mean by \\s in Unicode mode)
They are disjoint, so each code point gets one of four classes: 0 other, 1 letter,
2 number, 3 space. The table is stage1[cp >> 8] -> a block of 256 classes, with equal
blocks stored once (most of the 4352 blocks are unassigned or all one class).

Unicode version: 16.0, the version of the engines we must agree with: Hugging Face tokenizers
0.23 (Oniguruma) and tiktoken 0.14 (Rust's regex crate) both treat the letters Unicode 16 added
(U+13609, Egyptian hieroglyphs extended-A) as \\p{L}, and those of Unicode 17 (U+323B0, CJK
extension J) as unassigned. Python 3.11's own unicodedata is Unicode 14, so the
script reads the unicodedata2 backport, pinned to 16.0.0. Unassigned code points are "other",
as in both engines.

White_Space is not exposed by Python's unicodedata, so it is spelled out below from
Unicode's PropList.txt (it has not changed since Unicode 6.3, when U+180E left it).
The Llama 3 / Qwen2 patterns use the same three classes (and \\r, \\n, which need no table).

NFC. Hugging Face tokenizers' NFC normalizer is the unicode-normalization-alignments crate
(0.1.12, a 2019 fork of unicode-normalization), whose tables are Unicode 9.0.0's. Decomposition
mappings and combining classes never change once a character is assigned (Unicode's
normalization stability policy), so its data is Unicode 16's restricted to the characters
Unicode 9.0 had: a combining mark added later (U+1AC1, Unicode 14) has class 0 there, and a
composition added later (U+11935 U+11930 -> U+11938, Unicode 13) is not made. Which characters
the engine knows is read from the engine itself: a character has a decomposition there if its
NFD changes it, a combining class if its NFD reorders it around a mark of known class. The
script then checks its own NFC (nfc() below, the algorithm of nfc.hpp) against the engine on
every code point and on many random sequences of marks, letters and jamo before it writes.
"""
import pathlib
import random
import sys
import unicodedata2 as unicodedata  # pip install unicodedata2==16.0.0
from tokenizers import normalizers  # the engine whose NFC we must agree with

WHITE_SPACE = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
               0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
WHITE_SPACE_SET = set(WHITE_SPACE)
OTHER, LETTER, NUMBER, SPACE = 0, 1, 2, 3


def char_class(cp):
    if cp in WHITE_SPACE_SET:
        return SPACE
    category = unicodedata.category(chr(cp))
    if category[0] == "L":
        return LETTER
    if category[0] == "N":
        return NUMBER
    return OTHER


def code_points():
    return (cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)


# Hangul syllables decompose and compose algorithmically (Unicode 3.12), in every version.
S_BASE, L_BASE, V_BASE, T_BASE, L_COUNT, V_COUNT, T_COUNT = 0xAC00, 0x1100, 0x1161, 0x11A7, 19, 21, 28
S_COUNT = L_COUNT * V_COUNT * T_COUNT


def engine_tables():
    """The engine's NFC data: {cp: class} for classes != 0, {cp: full decomposition} (not Hangul
    syllables), {(first, second): composite} (primary composites, not Hangul)."""
    nfd, nfc_engine = normalizers.NFD(), normalizers.NFC()
    decompositions = {}
    for cp in code_points():
        if S_BASE <= cp < S_BASE + S_COUNT:
            continue
        full = unicodedata.normalize("NFD", chr(cp))
        if full == chr(cp):
            continue
        engine = nfd.normalize_str(chr(cp))
        if engine == chr(cp):
            continue  # assigned after Unicode 9.0
        assert engine == full, f"U+{cp:04X}: the engine's NFD differs from Unicode 16's"
        decompositions[cp] = [ord(c) for c in full]
    classes = {}
    for cp in code_points():
        ccc = unicodedata.combining(chr(cp))
        if ccc == 0:
            continue
        d = nfd.normalize_str(chr(cp))
        # U+0334 has class 1 and U+0301 class 230 (both in Unicode 1.1): a mark of class c > 1
        # moves behind U+0334 if the engine knows its class, one of class 1 in front of U+0301.
        probe, known = (chr(cp) + "\u0334", "\u0334" + d) if ccc > 1 else ("\u0301" + chr(cp), d + "\u0301")
        engine = nfd.normalize_str(probe)
        assert engine in (known, d + probe[1:] if ccc > 1 else probe[:1] + d), f"U+{cp:04X}: unexpected NFD {engine!r}"
        if engine == known:
            classes[cp] = ccc
    compositions = {}
    for cp in decompositions:
        mapping = unicodedata.decomposition(chr(cp)).split()
        # A primary composite: a canonical (untagged) mapping to two characters, not excluded
        # from composition (Full_Composition_Exclusion: then NFC does not give it back).
        if len(mapping) == 2 and unicodedata.normalize("NFC", chr(cp)) == chr(cp):
            pair = tuple(int(x, 16) for x in mapping)
            assert nfc_engine.normalize_str(chr(pair[0]) + chr(pair[1])) == chr(cp), f"U+{cp:04X} is not composed"
            compositions[pair] = cp
    return classes, decompositions, compositions


class Nfc:
    """NFC over the engine's tables (UAX #15: decompose, put marks in canonical order, compose),
    the algorithm of include/circuitry/text/nfc.hpp."""

    def __init__(self, classes, decompositions, compositions):
        self.classes, self.decompositions, self.compositions = classes, decompositions, compositions
        self.seconds = {b for _, b in compositions}

    def decompose(self, cp):
        if S_BASE <= cp < S_BASE + S_COUNT:
            s = cp - S_BASE
            out = [L_BASE + s // (V_COUNT * T_COUNT), V_BASE + s % (V_COUNT * T_COUNT) // T_COUNT]
            return out + [T_BASE + s % T_COUNT] if s % T_COUNT else out
        return self.decompositions.get(cp, [cp])

    def compose(self, a, b):
        if L_BASE <= a < L_BASE + L_COUNT and V_BASE <= b < V_BASE + V_COUNT:
            return S_BASE + ((a - L_BASE) * V_COUNT + b - V_BASE) * T_COUNT
        if S_BASE <= a < S_BASE + S_COUNT and (a - S_BASE) % T_COUNT == 0 and T_BASE < b < T_BASE + T_COUNT:
            return a + b - T_BASE
        return self.compositions.get((a, b))

    def __call__(self, text):
        cps = [d for c in text for d in self.decompose(ord(c))]
        ccc = self.classes.get
        for i in range(1, len(cps)):  # canonical order: a stable sort of each run of marks
            j = i
            while j > 0 and ccc(cps[j], 0) and 0 < ccc(cps[j], 0) < ccc(cps[j - 1], 0):
                cps[j - 1], cps[j] = cps[j], cps[j - 1]
                j -= 1
        out, starter, last = [], None, 0
        for cp in cps:
            c = ccc(cp, 0)
            if starter is not None and (last == 0 or last < c):  # last == 0: nothing between them
                composite = self.compose(out[starter], cp)
                if composite is not None:
                    out[starter] = composite
                    continue
            if c == 0:
                starter = len(out)
            last = c
            out.append(cp)
        return "".join(map(chr, out))

    def boundary(self, cp):
        """A character NFC can cut the text before: a starter that NFC leaves as it is and that
        never combines with what precedes it (ICU's "has a composition boundary before")."""
        first = self.decompose(cp)[0]
        return (self.classes.get(cp, 0) == 0 and self.classes.get(first, 0) == 0 and self(chr(cp)) == chr(cp)
                and cp not in self.seconds and first not in self.seconds
                and not (V_BASE <= cp < V_BASE + V_COUNT or T_BASE < cp < T_BASE + T_COUNT))


def check_against_engine(nfc):
    engine = normalizers.NFC()
    for cp in code_points():
        assert nfc(chr(cp)) == engine.normalize_str(chr(cp)), f"NFC(U+{cp:04X}) differs from the engine's"
    # Random sequences of what interacts: marks of every class (known to the engine or not),
    # characters that decompose or compose, Hangul jamo and syllables, plain letters.
    marks = [cp for cp in code_points() if unicodedata.combining(chr(cp))]
    parts = sorted({cp for pair in nfc.compositions for cp in pair} | set(nfc.decompositions))
    hangul = list(range(0x1100, 0x1113)) + list(range(0x1161, 0x1176)) + list(range(0x11A8, 0x11C3)) + [0xAC00, 0xAC01, 0xD7A3]
    plain = [ord(c) for c in "aeAE xyz.!"]
    rng = random.Random(9)
    for _ in range(300000):
        pool = rng.choice([marks, parts, hangul, plain, marks + parts])
        text = "".join(chr(rng.choice(rng.choice([pool, marks, plain]))) for _ in range(rng.randint(1, 7)))
        assert nfc(text) == engine.normalize_str(text), f"NFC({text!r}) differs from the engine's"
        # a cut before a boundary character leaves the result unchanged
        for i, c in enumerate(text):
            if i and nfc.boundary(ord(c)):
                assert nfc(text[:i]) + nfc(text[i:]) == nfc(text), f"{text!r}: U+{ord(c):04X} is no boundary"


def two_level(values, bits):
    """stage1[cp >> 8] -> a block of 256 values of `bits` bits, equal blocks stored once; the
    blocks packed 8 / bits values to a byte."""
    blocks, block_index, stage1 = [], {}, []
    for hi in range(0x110000 >> 8):
        block = tuple(values((hi << 8) | lo) for lo in range(256))
        if block not in block_index:
            block_index[block] = len(blocks)
            blocks.append(block)
        stage1.append(block_index[block])
    assert len(blocks) < 256, "stage1 entries are one byte"
    per_byte = 8 // bits
    packed = []
    for block in blocks:
        for i in range(0, 256, per_byte):
            packed.append(sum(block[i + k] << (k * bits) for k in range(per_byte)))
    return stage1, packed


def array(out, decl, values, per_line=32, hex_digits=0):
    out.append(f"{decl} = {{")
    spell = (lambda x: f"0x{x:0{hex_digits}X}") if hex_digits else str
    for i in range(0, len(values), per_line):
        out.append("  " + ",".join(spell(x) for x in values[i:i + per_line]) + ",")
    out.append("};")


def write_normalization(target):
    classes, decompositions, compositions = engine_tables()
    nfc = Nfc(classes, decompositions, compositions)
    check_against_engine(nfc)
    assert all(nfc.boundary(cp) for cp in range(0x80)), "nfc.hpp skips ASCII as boundaries"
    stage1, packed = two_level(lambda cp: int(nfc.boundary(cp)) if cp < 0xD800 or cp > 0xDFFF else 1, 1)

    out = ["#pragma once"]
    out.append("// Generated by scripts/make_unicode_tables.py from unicodedata2 "
               f"(Unicode {unicodedata.unidata_version}) and tokenizers; do not edit.")
    out.append("// Canonical decomposition and composition (NFC), as tokenizers' NFC normalizer has them:")
    out.append("// Unicode 9.0.0's data (the unicode-normalization-alignments crate), which is Unicode 16's")
    out.append("// restricted to the characters Unicode 9.0 had. See nfc.hpp for the algorithm.")
    out.append("#include <cstdint>")
    out.append("")
    out.append("namespace circuitry::text::unicode {")
    out.append("")
    out.append('inline constexpr const char* kNormalizationVersion = "9.0.0";')
    out.append("")
    out.append("/// (code point << 8) | canonical combining class, for each character whose class is not 0,")
    out.append("/// by code point.")
    array(out, f"inline constexpr std::uint32_t kCombiningClasses[{len(classes)}]",
          [cp << 8 | c for cp, c in sorted(classes.items())], 10, 7)
    out.append("")
    flat, index = [], []
    for cp, d in sorted(decompositions.items()):
        index.append(cp << 16 | len(flat) << 3 | (len(d) - 1))
        flat.extend(d)
    assert len(flat) < 1 << 13 and all(len(d) <= 8 for d in decompositions.values()), "13 + 3 bits suffice"
    out.append("/// The full canonical decomposition of each character that has one (Hangul syllables aside),")
    out.append("/// by code point: (code point << 16) | (offset in kDecomposed << 3) | (length - 1).")
    array(out, f"inline constexpr std::uint64_t kDecompositions[{len(index)}]", index, 8, 10)
    array(out, f"inline constexpr std::uint32_t kDecomposed[{len(flat)}]", flat, 12, 4)
    out.append("")
    out.append("/// The primary composites (Hangul aside) by (first, second): (first << 24 | second, composite).")
    pairs = sorted((a << 24 | b, c) for (a, b), c in compositions.items())
    array(out, f"inline constexpr std::uint64_t kCompositionPairs[{len(pairs)}]", [k for k, _ in pairs], 6, 11)
    array(out, f"inline constexpr std::uint32_t kComposites[{len(pairs)}]", [c for _, c in pairs], 12, 4)
    out.append("")
    out.append("/// 1 for a character NFC can cut the text before (a starter that NFC leaves as it is and")
    out.append("/// that never combines with the character before it), as kBoundaryBlockOf[cp >> 8] -> a block")
    out.append("/// of 256 bits in kBoundaryBlocks.")
    array(out, f"inline constexpr std::uint8_t kBoundaryBlockOf[{len(stage1)}]", stage1)
    array(out, f"inline constexpr std::uint8_t kBoundaryBlocks[{len(packed)}]", packed)
    out.append("")
    out.append("inline constexpr bool nfc_boundary(std::uint32_t cp) {")
    out.append("  const std::uint32_t i = std::uint32_t(kBoundaryBlockOf[cp >> 8]) * 256 + (cp & 0xFF);")
    out.append("  return (kBoundaryBlocks[i >> 3] >> (i & 7)) & 1;")
    out.append("}")
    out.append("")
    out.append("}  // namespace circuitry::text::unicode")
    target.write_text("\n".join(out) + "\n")
    print(f"{target}: {len(classes)} combining classes, {len(decompositions)} decompositions, "
          f"{len(compositions)} compositions; agrees with the engine", file=sys.stderr)


def main():
    assert unicodedata.unidata_version == "16.0.0", f"need Unicode 16.0.0, have {unicodedata.unidata_version}"
    blocks, block_index, stage1 = [], {}, []
    for hi in range(0x110000 >> 8):
        block = tuple(char_class((hi << 8) | lo) for lo in range(256))
        if block not in block_index:
            block_index[block] = len(blocks)
            blocks.append(block)
        stage1.append(block_index[block])
    assert len(blocks) < 256, "stage1 entries are one byte"

    out = []
    out.append("#pragma once")
    out.append("// Generated by scripts/make_unicode_tables.py from unicodedata2 "
               f"(Unicode {unicodedata.unidata_version}); do not edit.")
    out.append("// The character classes of GPT-2's pre-tokenization pattern: 0 other, 1 letter (\\p{L}),")
    out.append("// 2 number (\\p{N}), 3 space (\\s, the White_Space property), as a two-level table:")
    out.append("// kBlockOf[cp >> 8] names a block of 256 classes, kBlocks[block * 256 + (cp & 0xFF)].")
    out.append("#include <cstdint>")
    out.append("")
    out.append("namespace circuitry::text::unicode {")
    out.append("")
    out.append(f"inline constexpr const char* kUnicodeVersion = \"{unicodedata.unidata_version}\";")
    out.append(f"inline constexpr std::uint8_t kBlockOf[{len(stage1)}] = {{")
    for i in range(0, len(stage1), 32):
        out.append("  " + ",".join(str(x) for x in stage1[i:i + 32]) + ",")
    out.append("};")
    # Four classes fit in 2 bits; packed 4 to a byte the blocks take 64 bytes each.
    packed = []
    for block in blocks:
        for i in range(0, 256, 4):
            packed.append(block[i] | block[i + 1] << 2 | block[i + 2] << 4 | block[i + 3] << 6)
    out.append(f"inline constexpr std::uint8_t kBlocks[{len(packed)}] = {{")
    for i in range(0, len(packed), 32):
        out.append("  " + ",".join(str(x) for x in packed[i:i + 32]) + ",")
    out.append("};")
    out.append("")
    out.append("/// The class of code point cp (at most 0x10FFFF).")
    out.append("inline constexpr int char_class(std::uint32_t cp) {")
    out.append("  const std::uint32_t i = std::uint32_t(kBlockOf[cp >> 8]) * 256 + (cp & 0xFF);")
    out.append("  return (kBlocks[i >> 2] >> ((i & 3) * 2)) & 3;")
    out.append("}")
    out.append("")
    out.append("}  // namespace circuitry::text::unicode")
    text_dir = pathlib.Path(__file__).resolve().parent.parent / "include/circuitry/text"
    target = text_dir / "unicode_classes.hpp"
    target.write_text("\n".join(out) + "\n")
    print(f"{target}: {len(blocks)} distinct blocks, {len(packed) + len(stage1)} bytes of table", file=sys.stderr)
    write_normalization(text_dir / "unicode_normalization.hpp")


if __name__ == "__main__":
    main()

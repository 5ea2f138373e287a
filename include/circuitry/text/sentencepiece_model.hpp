#pragma once
// SentencePiece's own model file, tokenizer.model (Llama 2, Mistral, Gemma, T5, ALBERT ship one): a
// serialized ModelProto (sentencepiece_model.proto), read with protobuf_wire.hpp. Read:
//   pieces (1)            piece (1), score (2, float), type (3: 1 normal, 2 unknown, 3 control,
//                         4 user-defined, 5 unused, 6 byte); ids by position
//   trainer_spec (2)      model_type (3: 1 Unigram, 2 BPE; word and char models are refused),
//                         treat_whitespace_as_suffix (24, refused when true), byte_fallback (35),
//                         bos_id (41, default 1 where the model has that id; -1 none)
//   normalizer_spec (3)   name (1), precompiled_charsmap (2), add_dummy_prefix (3),
//                         remove_extra_whitespaces (4), escape_whitespaces (5), each default true
// Other fields are skipped. Checked as the sentencepiece library checks a model when it loads it
// (model_interface.cc): at least one piece, none empty, no piece text twice, exactly one unknown
// piece, byte pieces spelled <0xNN> and only with byte_fallback, finite scores, bos_id an id.
// A non-empty precompiled_charsmap (the nmt_nfkc rules most models are trained with, T5's and
// ALBERT's among them) is an Error: circuitry does not reproduce its normalization; models trained
// with normalization_rule_name=identity (Llama 2, Mistral, Gemma) have none.
// A Unigram model becomes a UnigramConfig (unigram_tokenizer.hpp, encoding as the sentencepiece
// library); a BPE model a SentencePieceConfig (sentencepiece_bpe.hpp) merging by the scores of the
// pieces, as llama.cpp and the sentencepiece library do, user-defined pieces matched whole in the
// escaped text, unknown characters to their byte pieces or the unknown piece (runs fused).
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/text/protobuf_wire.hpp"
#include "circuitry/text/sentencepiece_bpe.hpp"
#include "circuitry/text/sentencepiece_config.hpp"
#include "circuitry/text/unigram_config.hpp"

namespace circuitry::text {

struct SentencePieceModel {
  std::vector<UnigramPiece> pieces;  // by id
  int model_type = 1;                // 1 Unigram, 2 BPE
  int unk_id = -1;                   // the unknown piece
  std::int64_t bos_id = 1;           // -1: none
  bool bos_given = false;            // bos_id is in the file (else the default)
  bool byte_fallback = false;
  bool add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;
  std::string name;  // the file, for errors
};

namespace detail {

inline UnigramPiece read_model_piece(std::string_view message, const std::string& where) {
  ProtoReader r(message, where);
  UnigramPiece p;
  while (!r.done()) {
    const ProtoField f = r.next();
    if (f.number == 1) {
      r.expect(f, 2, "piece");
      p.text = std::string(f.bytes);
    } else if (f.number == 2) {
      r.expect(f, 5, "score");
      p.score = ProtoReader::as_float(f);
    } else if (f.number == 3) {
      r.expect(f, 0, "type");
      require(f.number_value >= 1 && f.number_value <= 6, where + ": type " + std::to_string(f.number_value) + " is no piece type (1..6)");
      p.kind = PieceKind(int(f.number_value));
    }
  }
  return p;
}

/// A bool field (a varint, 0 or 1).
inline bool proto_bool(const ProtoReader& r, const ProtoField& f, const char* field_name) {
  r.expect(f, 0, field_name);
  require(f.number_value <= 1, r.where() + ": " + field_name + " is " + std::to_string(f.number_value) + ", not 0 or 1");
  return f.number_value == 1;
}

inline void read_trainer_spec(std::string_view message, SentencePieceModel& m) {
  ProtoReader r(message, m.name + ": trainer_spec");
  while (!r.done()) {
    const ProtoField f = r.next();
    if (f.number == 3) {
      r.expect(f, 0, "model_type");
      require(f.number_value == 1 || f.number_value == 2,
              m.name + ": model_type " + std::to_string(f.number_value) + " (3 word, 4 char); circuitry reads SentencePiece's Unigram (1) "
                       "and BPE (2) models");
      m.model_type = int(f.number_value);
    } else if (f.number == 24) {
      require(!proto_bool(r, f, "treat_whitespace_as_suffix"),
              m.name + ": treat_whitespace_as_suffix is true (a '\u2581' after each word), which circuitry does not read");
    } else if (f.number == 35) {
      m.byte_fallback = proto_bool(r, f, "byte_fallback");
    } else if (f.number == 41) {
      r.expect(f, 0, "bos_id");
      m.bos_id = std::int32_t(std::uint32_t(f.number_value));
      m.bos_given = true;
    }
  }
}

inline void read_normalizer_spec(std::string_view message, SentencePieceModel& m) {
  ProtoReader r(message, m.name + ": normalizer_spec");
  std::string rule_name;
  while (!r.done()) {
    const ProtoField f = r.next();
    if (f.number == 1) {
      r.expect(f, 2, "name");
      rule_name = std::string(f.bytes);
    } else if (f.number == 2) {
      r.expect(f, 2, "precompiled_charsmap");
      require(f.bytes.empty(), m.name + ": the normalizer \"" + rule_name + "\" has a precompiled_charsmap (" + std::to_string(f.bytes.size()) +
                                   " bytes of Unicode rules, such as nmt_nfkc's), which circuitry does not reproduce; save the "
                                   "tokenizer as a tokenizer.json with transformers (AutoTokenizer.from_pretrained(dir)"
                                   ".save_pretrained(dir)) only if its normalizer is one circuitry reads, or tokenize the texts "
                                   "with transformers and give the task as ids");
    } else if (f.number == 3) {
      m.add_dummy_prefix = proto_bool(r, f, "add_dummy_prefix");
    } else if (f.number == 4) {
      m.remove_extra_whitespaces = proto_bool(r, f, "remove_extra_whitespaces");
    } else if (f.number == 5) {
      m.escape_whitespaces = proto_bool(r, f, "escape_whitespaces");
    }
  }
}

}  // namespace detail

/// A tokenizer.model's bytes, parsed and checked; `name` names the file in errors.
inline SentencePieceModel read_sentencepiece_model(std::string_view bytes, const std::string& name) {
  SentencePieceModel m;
  m.name = name;
  detail::ProtoReader r(bytes, name);
  while (!r.done()) {
    const detail::ProtoField f = r.next();
    if (f.number == 1) {
      r.expect(f, 2, "pieces");
      require(m.pieces.size() < (std::size_t(1) << 30), name + ": more than 2^30 pieces");
      m.pieces.push_back(detail::read_model_piece(f.bytes, name + ": pieces[" + std::to_string(m.pieces.size()) + "]"));
    } else if (f.number == 2) {
      r.expect(f, 2, "trainer_spec");
      detail::read_trainer_spec(f.bytes, m);
    } else if (f.number == 3) {
      r.expect(f, 2, "normalizer_spec");
      detail::read_normalizer_spec(f.bytes, m);
    }
  }
  require(!m.pieces.empty(), name + ": no pieces (not a SentencePiece model, or an empty one)");
  std::unordered_set<std::string_view> seen;
  for (std::size_t id = 0; id < m.pieces.size(); ++id) {
    const UnigramPiece& p = m.pieces[id];
    const std::string where = name + ": pieces[" + std::to_string(id) + "]";
    require(!p.text.empty(), where + " is empty");
    require(seen.insert(p.text).second, where + " '" + p.text + "' is defined twice");
    require(std::isfinite(p.score), where + " '" + p.text + "' has a score that is not finite");
    if (p.kind == PieceKind::unknown) {
      require(m.unk_id < 0, where + " '" + p.text + "' is a second unknown piece");
      m.unk_id = int(id);
    }
    if (p.kind == PieceKind::byte) {
      require(m.byte_fallback, where + " '" + p.text + "' is a byte piece and byte_fallback is false");
      require(detail::byte_token_value(p.text) >= 0, where + " '" + p.text + "' is a byte piece not spelled <0xNN>");
    }
  }
  require(m.unk_id >= 0, name + ": no unknown piece (type 2)");
  if (!m.bos_given && m.bos_id >= std::int64_t(m.pieces.size())) m.bos_id = -1;  // the default 1 in a model of one piece
  require(m.bos_id >= -1 && m.bos_id < std::int64_t(m.pieces.size()),
          name + ": trainer_spec.bos_id " + std::to_string(m.bos_id) + " is not a piece id (the model has " + std::to_string(m.pieces.size()) +
              " pieces)");
  return m;
}

/// A Unigram model's config (encoding as the sentencepiece library).
inline UnigramConfig unigram_config(const SentencePieceModel& m) {
  require(m.model_type == 1, m.name + ": a BPE model, not Unigram");
  UnigramConfig c;
  c.pieces = m.pieces;
  c.unk_id = m.unk_id;
  c.byte_fallback = m.byte_fallback;
  c.sentencepiece_library = true;
  c.add_dummy_prefix = m.add_dummy_prefix;
  c.remove_extra_whitespaces = m.remove_extra_whitespaces;
  c.escape_whitespaces = m.escape_whitespaces;
  c.vocab_name = c.added_name = m.name;
  return c;
}

/// A BPE model's config: merges by score (see the top).
inline SentencePieceConfig sentencepiece_bpe_config(const SentencePieceModel& m) {
  require(m.model_type == 2, m.name + ": a Unigram model, not BPE");
  require(m.escape_whitespaces, m.name + ": escape_whitespaces is false (spaces kept as ' '), which circuitry's SentencePiece BPE does not read");
  SentencePieceConfig c;
  for (std::size_t id = 0; id < m.pieces.size(); ++id) {
    const UnigramPiece& p = m.pieces[id];
    c.vocab.emplace_back(p.text, int(id));
    c.scores.push_back(float(p.score));
    if (p.kind == PieceKind::user_defined) c.added.push_back({p.text, int(id), false, true});
  }
  c.unk_token = m.pieces[std::size_t(m.unk_id)].text;
  c.byte_fallback = m.byte_fallback;
  c.fuse_unk = true;
  c.prefix = m.add_dummy_prefix ? SpacePrefix::every_piece : SpacePrefix::none;
  c.remove_extra_whitespaces = m.remove_extra_whitespaces;
  c.vocab_name = c.merges_name = c.added_name = m.name;
  return c;
}

}  // namespace circuitry::text

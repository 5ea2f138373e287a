#pragma once
// What the task files, the task generators and the CLI need of a tokenizer, whichever kind it
// is: byte-level BPE (bpe_tokenizer.hpp: GPT-2, Pythia, Llama 3, Qwen2, SmolLM2), SentencePiece
// BPE (sentencepiece_bpe.hpp: Llama 2, Mistral, Gemma) or SentencePiece Unigram
// (unigram_tokenizer.hpp). load_tokenizer.hpp picks the kind from the files. Tokenizers are immutable once built and can be shared by threads.
//
// Two ways to encode a text. encode(text) is the ids of the text as a whole (Hugging Face
// tokenizers' encode(text, add_special_tokens=False): no BOS). A SentencePiece tokenizer writes a
// space as '\u2581' and puts one before the text ("Mary" -> '\u2581Mary'), so the text " Mary" alone is
// '\u2581\u2581Mary', 2 tokens, while in "When Mary" the word is the one token '\u2581Mary'. The
// generators' words and a task's answers are read where they stand, after other text:
// encode_continuation(text) is the ids of the text there, without the prefix (" Mary" ->
// '\u2581Mary'). For byte-level BPE the two are the same.
//
// BOS: some models are trained with a token before every sequence (Llama 2's <s>, Llama 3's
// <|begin_of_text|>), which their tokenizer adds to a whole text (Hugging Face's post-processor,
// GGUF's add_bos_token); others with none (GPT-2, SmolLM2). bos() is that token, or none; the
// loaders (load_tokenizer.hpp) set it from the files. encode() never adds it: a task's clean and
// corrupted texts get it in front (task.hpp), answers and words never.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace circuitry::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  /// The token ids of a UTF-8 text (no BOS); throws on invalid UTF-8, naming the byte offset.
  virtual std::vector<int> encode(std::string_view utf8) const = 0;

  /// The token ids of a text that follows other text (a word with its leading space, an
  /// answer): encode() without what a tokenizer puts before a whole text.
  virtual std::vector<int> encode_continuation(std::string_view utf8) const { return encode(utf8); }

  /// The bytes the ids stand for, concatenated (a cut through a character stays as its bytes).
  /// Throws on an id out of range.
  virtual std::string decode(const std::vector<int>& ids) const = 0;

  /// The bytes of one token (' ' for a SentencePiece '\u2581'; an added token's content).
  virtual std::string token_text(int id) const = 0;

  virtual std::size_t vocab_size() const = 0;

  /// The token the model's tokenizer puts before a whole sequence, if any (see the top).
  std::optional<int> bos() const { return bos_; }
  /// Set by the loaders as the files say; `id` must lie in the vocabulary.
  void set_bos(std::optional<int> id) { bos_ = id; }

 protected:
  Tokenizer() = default;
  Tokenizer(const Tokenizer&) = default;
  Tokenizer(Tokenizer&&) = default;
  Tokenizer& operator=(const Tokenizer&) = default;
  Tokenizer& operator=(Tokenizer&&) = default;

 private:
  std::optional<int> bos_;
};

}  // namespace circuitry::text

// libFuzzer target: the SentencePiece tokenizer.model reader (harnesses.hpp). Built by the fuzz preset; scripts/fuzz.sh runs it.
#include "harnesses.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return circuitry::fuzz::run_one(circuitry::fuzz::sentencepiece_model, data, size);
}

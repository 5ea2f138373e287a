// libFuzzer target: the GGUF reader, dequantization, config and tokenizer (harnesses.hpp). Built by the fuzz preset; scripts/fuzz.sh runs it.
#include "harnesses.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return circuitry::fuzz::run_one(circuitry::fuzz::gguf, data, size);
}

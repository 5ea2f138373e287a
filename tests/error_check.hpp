#pragma once
// Test helper: CHECK_ERROR(expr, words...) checks that expr throws circuitry::Error whose
// message contains every one of the words.
#include <initializer_list>
#include <string>

#include <doctest/doctest.h>

#include <circuitry/core/error.hpp>

namespace circuitry::testing {

/// The message of the circuitry::Error that `f` throws, or a marker when it throws none.
template <class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error thrown)";
}

}  // namespace circuitry::testing

#define CHECK_ERROR(expr, ...)                                                                    \
  do {                                                                                            \
    const std::string message_ = ::circuitry::testing::error_message([&] { (void)(expr); });      \
    INFO("message: " << message_);                                                                \
    for (const std::string& word_ : std::initializer_list<std::string>{__VA_ARGS__})              \
      CHECK_MESSAGE(message_.find(word_) != std::string::npos, "expected: " << word_);            \
  } while (false)

#pragma once
// One exception type for every user-facing fault (bad files, bad shapes, unknown names).
// The message always names what was wrong and, where it can, how to fix it; the CLI prints
// it as one line on stderr and exits non-zero.
#include <stdexcept>
#include <string>

namespace circuitry {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// Throws Error(message) unless `condition` holds.
inline void require(bool condition, const std::string& message) {
  if (!condition) throw Error(message);
}

}  // namespace circuitry

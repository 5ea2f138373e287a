#pragma once
// Test helper: a fresh directory under the system temp directory, removed with everything in it
// when the test ends (also when a check throws), and a function that writes a file's bytes.
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace circuitry::testing {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::random_device random;
    path = std::filesystem::temp_directory_path() / ("circuitry_test_" + std::to_string(random()) + std::to_string(random()));
    std::filesystem::create_directories(path);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
};

inline void write_file(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace circuitry::testing

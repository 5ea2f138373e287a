#pragma once
// Writing outputs so that a failed or killed command never leaves a half-written result. Each
// file is written to a temporary beside its target (the same folder, so the rename is atomic),
// flushed to disk, and renamed over the target only once complete: a reader sees the old file
// or the new one, never a truncated one. A command with several outputs checks all their
// folders before it computes anything (check_writable) and stages them in one OutputSet, which
// renames them together at commit(); if any step fails, the staged files are removed and no
// target is touched. POSIX (open, fsync, rename).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "circuitry/core/error.hpp"

namespace circuitry::io {

namespace detail {

inline std::filesystem::path folder_of(const std::filesystem::path& target) {
  return target.has_parent_path() ? target.parent_path() : std::filesystem::path(".");
}

/// Creates a new, empty file beside `target` that no one else uses (O_EXCL), with the mode a
/// plain create would give (0666 less the umask), and returns its path.
inline std::filesystem::path create_temporary_beside(const std::filesystem::path& target) {
  static std::atomic<unsigned> counter = 0;  // distinct names within a process; the pid separates processes
  for (int attempt = 0;; ++attempt) {
    std::filesystem::path temp = folder_of(target) / ("." + target.filename().string() + ".tmp-" +
                                                      std::to_string(::getpid()) + "-" + std::to_string(counter++));
    const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0) {
      ::close(fd);
      return temp;
    }
    if (errno != EEXIST || attempt > 100)
      throw Error(target.string() + ": cannot write it: creating a temporary file beside it failed (" +
                  std::strerror(errno) + ")");
  }
}

/// Flushes the file's data to disk, so that the rename never publishes a file whose data a
/// crash could still lose.
inline bool sync_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const bool ok = ::fsync(fd) == 0;
  return ::close(fd) == 0 && ok;
}

}  // namespace detail

/// Error unless a file can be written at `target`: its folder exists, is a folder and is
/// writable, and `target` is not itself a folder. Commands call it for every output before
/// they compute, so a typo in an output path costs nothing.
inline void check_writable(const std::filesystem::path& target) {
  const std::filesystem::path folder = detail::folder_of(target);
  std::error_code ec;
  if (!std::filesystem::exists(folder, ec))
    throw Error(target.string() + ": cannot write it: the folder " + folder.string() + " does not exist");
  if (!std::filesystem::is_directory(folder, ec))
    throw Error(target.string() + ": cannot write it: " + folder.string() + " is not a folder");
  if (::access(folder.c_str(), W_OK | X_OK) != 0)
    throw Error(target.string() + ": cannot write it: the folder " + folder.string() + " is not writable (" +
                std::strerror(errno) + ")");
  if (std::filesystem::is_directory(target, ec))
    throw Error(target.string() + ": cannot write it: it is a folder; name a file");
}

/// Creates folder `dir` (and its parents) for a command's outputs, or Error naming it.
inline void create_output_folder(const std::filesystem::path& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir, ec))
    throw Error(dir.string() + ": cannot create the output folder (" +
                (ec ? ec.message() : std::string("a file of that name exists")) + ")");
  check_writable(dir / "x");
}

/// Outputs written as temporaries and published together by commit(). Destroying the set
/// without a commit (an exception on the way) removes the temporaries.
class OutputSet {
 public:
  OutputSet() = default;
  OutputSet(const OutputSet&) = delete;
  OutputSet& operator=(const OutputSet&) = delete;
  ~OutputSet() { discard(); }

  /// Stages `target` with whatever write(std::ostream&) writes.
  template <class Write>
  void stage_with(const std::filesystem::path& target, Write&& write) {
    check_writable(target);
    std::filesystem::path temp = detail::create_temporary_beside(target);
    staged_.push_back({target, temp});  // from here on, discard() removes it
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (out) std::forward<Write>(write)(out);
    out.flush();
    const bool written = bool(out);
    out.close();
    if (!written || out.fail() || !detail::sync_file(temp))
      throw Error(target.string() + ": write failed (disk full?)");
  }

  /// Stages `target` with `content`.
  void stage(const std::filesystem::path& target, std::string_view content) {
    stage_with(target, [&](std::ostream& out) { out.write(content.data(), static_cast<std::streamsize>(content.size())); });
  }

  /// The temporary that holds staged `target` (for a tool that reads it, such as Graphviz).
  const std::filesystem::path& staged(const std::filesystem::path& target) const {
    for (const Staged& s : staged_)
      if (s.target == target) return s.temp;
    throw Error(target.string() + ": not staged");
  }

  /// Renames every staged temporary onto its target, in staging order.
  void commit() {
    for (std::size_t i = 0; i < staged_.size(); ++i) {
      std::error_code ec;
      std::filesystem::rename(staged_[i].temp, staged_[i].target, ec);
      if (ec) {
        staged_.erase(staged_.begin(), staged_.begin() + static_cast<std::ptrdiff_t>(i));
        throw Error(staged_.front().target.string() + ": cannot write it (" + ec.message() + ")");
      }
    }
    staged_.clear();
  }

 private:
  void discard() noexcept {
    for (const Staged& s : staged_) {
      std::error_code ec;
      std::filesystem::remove(s.temp, ec);
    }
    staged_.clear();
  }

  struct Staged {
    std::filesystem::path target, temp;
  };
  std::vector<Staged> staged_;
};

/// Writes one file atomically: `content`, or whatever write(std::ostream&) writes.
inline void write_file_atomically(const std::filesystem::path& target, std::string_view content) {
  OutputSet outputs;
  outputs.stage(target, content);
  outputs.commit();
}

template <class Write>
void write_file_atomically_with(const std::filesystem::path& target, Write&& write) {
  OutputSet outputs;
  outputs.stage_with(target, std::forward<Write>(write));
  outputs.commit();
}

}  // namespace circuitry::io

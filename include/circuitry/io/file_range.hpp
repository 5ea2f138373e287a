#pragma once
// Reading a byte range of a file without holding it in memory: through a read-only memory map
// of the file, a window of at most 16 MiB at a time, or, where mapping is not available or
// fails, streamed through a 1 MiB buffer instead. The caller converts each piece as it arrives,
// so reading costs nothing proportional to the range (safetensors.hpp reads tensor data so).
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#if __has_include(<sys/mman.h>) && __has_include(<sys/stat.h>) && __has_include(<fcntl.h>) && __has_include(<unistd.h>)
#define CIRCUITRY_HAS_MMAP 1
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include "circuitry/core/error.hpp"

namespace circuitry::io::detail {

/// How the bytes come off the disk: mapped (the default) or streamed (the fallback).
enum class ReadMethod { map, stream };

inline constexpr std::size_t map_window_bytes = std::size_t(1) << 24;     // 16 MiB mapped at a time
inline constexpr std::size_t stream_buffer_bytes = std::size_t(1) << 20;  // 1 MiB read at a time

/// Streams `length` bytes at `offset` of the open stream through one buffer of at most `piece`
/// bytes, calling consume(bytes, n) for each buffer-full.
template <class Consume>
void consume_streamed(std::ifstream& in, std::uint64_t offset, std::size_t length, std::size_t piece,
                      const std::string& failure, Consume& consume) {
  std::vector<unsigned char> buffer(std::min(piece, length));
  in.seekg(static_cast<std::streamoff>(offset));
  for (std::size_t done = 0; done < length;) {
    const std::size_t n = std::min(piece, length - done);
    in.read(reinterpret_cast<char*>(buffer.data()), static_cast<std::streamsize>(n));
    if (!in) throw Error(failure);
    consume(buffer.data(), n);
    done += n;
  }
}

#ifdef CIRCUITRY_HAS_MMAP
/// Maps `length` bytes at `offset` of the open file `fd` a window of at most `piece` bytes at a
/// time (read-only, unmapped again before the next window, so at most one window is resident)
/// and calls consume(bytes, n) on each. Returns how many bytes it consumed: all of them, or
/// fewer when the system refused a mapping, so that the caller streams the rest.
template <class Consume>
std::size_t consume_mapped(int fd, std::uint64_t offset, std::size_t length, std::size_t piece, Consume& consume) {
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  std::size_t done = 0;
  while (done < length) {
    const std::size_t n = std::min(piece, length - done);
    const std::uint64_t start = offset + done;
    const std::uint64_t aligned = start - start % page;  // a mapping starts on a page boundary
    const std::size_t mapped_bytes = static_cast<std::size_t>(start - aligned) + n;
    void* mapped = ::mmap(nullptr, mapped_bytes, PROT_READ, MAP_PRIVATE, fd, static_cast<off_t>(aligned));
    if (mapped == MAP_FAILED) return done;
    struct Unmap {
      void* address;
      std::size_t bytes;
      ~Unmap() { ::munmap(address, bytes); }
    } unmap{mapped, mapped_bytes};
    ::madvise(mapped, mapped_bytes, MADV_SEQUENTIAL);  // a hint: read ahead, drop pages behind
    consume(static_cast<const unsigned char*>(mapped) + (start - aligned), n);
    done += n;
  }
  return done;
}
#endif

/// Calls consume(bytes, n) on consecutive pieces of the `length` bytes at `offset` of the file at
/// `path`, in order; each piece holds whole `unit`-byte elements and at most max(unit, window)
/// bytes (map) or max(unit, buffer) bytes (stream), so memory use does not grow with `length`.
/// The file must still have `file_size` bytes (the size it had when it was validated); if not, or
/// if it cannot be read, the Error is `failure`. ReadMethod::map falls back to streaming where
/// mapping is unavailable or refused. (A file truncated while mapped cannot be detected: the
/// reader would fault. safetensors readers that map files, the reference one too, share this.)
template <class Consume>
void read_file_range(const std::filesystem::path& path, std::uintmax_t file_size, std::uint64_t offset,
                     std::size_t length, std::size_t unit, ReadMethod method, const std::string& failure,
                     Consume&& consume, std::size_t window = map_window_bytes,
                     std::size_t buffer = stream_buffer_bytes) {
  auto whole_units = [unit](std::size_t bytes) { return std::max(unit, bytes - bytes % unit); };
  std::size_t done = 0;
#ifdef CIRCUITRY_HAS_MMAP
  if (method == ReadMethod::map && length > 0) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(failure);
    struct Close {
      int fd;
      ~Close() { ::close(fd); }
    } closer{fd};
    struct stat status {};
    if (::fstat(fd, &status) != 0 || static_cast<std::uintmax_t>(status.st_size) != file_size) throw Error(failure);
    done = consume_mapped(fd, offset, length, whole_units(window), consume);
  }
#endif
  if (done == length) return;
  std::error_code ec;
  std::ifstream in(path, std::ios::binary);
  if (!in || std::filesystem::file_size(path, ec) != file_size || ec) throw Error(failure);
  consume_streamed(in, offset + done, length - done, whole_units(buffer), failure, consume);
}

}  // namespace circuitry::io::detail

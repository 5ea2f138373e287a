#pragma once
// The tensors of a model directory, in either layout Hugging Face's save_pretrained writes:
//   - one file: dir/model.safetensors;
//   - shards: dir/model.safetensors.index.json, {"metadata": {...}, "weight_map": {tensor: shard}},
//     plus the shard files it names (model-00001-of-00003.safetensors, ...), each an ordinary
//     safetensors file holding some of the tensors.
// When both are present the single file is used (transformers looks for it first as well).
// Readers ask for a tensor by name and need not know which file holds it.
//
// The index is untrusted input, like a safetensors header. Before any tensor is read, open()
// checks that
//   - the index is JSON without duplicate keys, and "weight_map" maps each tensor to a string;
//   - every shard is a plain file name inside dir (not absolute, no path separator, no ".."),
//     so an index cannot send the reader elsewhere on the disk, and the file exists;
//   - every shard passes SafetensorsFile's checks (each shard is opened and validated once,
//     however many tensors it holds);
//   - the index and the shards agree exactly: each tensor the index names is in the shard it
//     names, and each tensor of each shard is named by the index for that shard, so no tensor
//     is missing, unlisted or stored twice.
// Each failure is one circuitry::Error naming the file at fault. The index's "metadata"
// (total_size, total_parameters) is informational and not checked.
#include <cstddef>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "circuitry/core/error.hpp"
#include "circuitry/io/read_file.hpp"
#include "circuitry/io/safetensors.hpp"

namespace circuitry::io {

class TensorStore {
 public:
  /// Opens and validates the tensors of `dir` (see the checks above); reads no tensor data.
  static TensorStore open(const std::filesystem::path& dir);

  /// The file that lists the tensors: dir/model.safetensors or dir/model.safetensors.index.json.
  const std::filesystem::path& path() const { return path_; }
  /// Every tensor name, sorted.
  std::vector<std::string> names() const;
  /// The number of tensors.
  std::size_t size() const { return file_of_tensor_.size(); }
  bool contains(std::string_view name) const { return file_of_tensor_.find(name) != file_of_tensor_.end(); }
  /// The header entry of `name`; an Error naming the tensor and the directory if there is none.
  const TensorInfo& info(std::string_view name) const { return file(name).info(name); }
  /// The path of the file holding `name`, for error messages.
  std::string file_of(std::string_view name) const { return file(name).path().string(); }

  /// The tensor's values in row-major order, converted from F64, F32, F16 or BF16.
  template <class T>
    requires std::is_same_v<T, float> || std::is_same_v<T, double>
  std::vector<T> read(std::string_view name) const {
    return file(name).template read<T>(name);
  }

  /// Like read(), into caller-owned storage of exactly info(name).num_elements() values.
  template <class T>
    requires std::is_same_v<T, float> || std::is_same_v<T, double>
  void read_into(std::string_view name, std::span<T> out) const {
    file(name).read_into(name, out);
  }

 private:
  const SafetensorsFile& file(std::string_view name) const;
  void open_shards(const std::filesystem::path& dir);

  std::filesystem::path path_;
  std::vector<SafetensorsFile> files_;  // one per file, in file name order
  std::map<std::string, std::size_t, std::less<>> file_of_tensor_;  // tensor -> index into files_
};

namespace detail {

/// Refuses a shard name that could lead outside the model directory: it must be a plain file
/// name, as save_pretrained writes them ("model-00001-of-00003.safetensors").
inline void check_shard_name(const nlohmann::json& shard, const std::string& where, const std::string& tensor) {
  const std::string name = shard.get<std::string>();
  const std::filesystem::path path(name);
  if (name.empty() || path.has_root_path() || name.find_first_of(std::string("/\\\0", 3)) != std::string::npos ||
      name.find("..") != std::string::npos)
    throw Error(where + ": tensor '" + tensor + "' is put in shard " + shard.dump() +
                ", which is not a plain file name in the model directory (no absolute path, path separator or \"..\")");
}

}  // namespace detail

inline TensorStore TensorStore::open(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw Error(dir.string() +
                ": not a directory (expected a model directory with model.safetensors or model.safetensors.index.json)");
  const std::filesystem::path single = dir / "model.safetensors", index = dir / "model.safetensors.index.json";
  TensorStore store;
  if (std::filesystem::exists(single, ec)) {
    store.path_ = single;
    store.files_.push_back(SafetensorsFile::open(single));
    for (const std::string& name : store.files_.front().names()) store.file_of_tensor_.emplace(name, 0);
  } else if (std::filesystem::exists(index, ec)) {
    store.path_ = index;
    store.open_shards(dir);
  } else {
    const bool has_bin = std::filesystem::exists(dir / "pytorch_model.bin", ec) ||
                         std::filesystem::exists(dir / "pytorch_model.bin.index.json", ec);
    throw Error(single.string() + ": file does not exist, nor does model.safetensors.index.json (a sharded checkpoint)" +
                (has_bin ? "; the directory has pytorch_model.bin, which circuitry cannot read: save the model with "
                           "save_pretrained(dir, safe_serialization=True)"
                         : ""));
  }
  return store;
}

inline void TensorStore::open_shards(const std::filesystem::path& dir) {
  const std::string where = path_.string();
  const nlohmann::json json = detail::parse_unique_keys(read_regular_file(path_), where, "index");
  if (!json.is_object()) throw Error(where + ": expected a JSON object with \"weight_map\", got " + json.type_name());
  const auto weight_map = json.find("weight_map");
  if (weight_map == json.end())
    throw Error(where + ": missing key \"weight_map\" (the object that maps each tensor to its shard file)");
  if (!weight_map->is_object())
    throw Error(where + ": \"weight_map\" must be an object mapping tensor names to shard files, got " +
                weight_map->type_name());
  if (weight_map->empty()) throw Error(where + ": \"weight_map\" lists no tensors");

  std::map<std::string, std::string, std::less<>> shard_of;  // tensor -> shard, as the index says
  std::map<std::string, std::string> a_tensor_in;             // shard -> the first tensor put in it
  for (const auto& [tensor, shard] : weight_map->items()) {
    if (!shard.is_string())
      throw Error(where + ": \"weight_map\" must map tensor names to shard file names, but tensor '" + tensor +
                  "' maps to " + shard.dump());
    detail::check_shard_name(shard, where, tensor);
    shard_of.emplace(tensor, shard.get<std::string>());
    a_tensor_in.emplace(shard.get<std::string>(), tensor);
  }

  // Each shard once, in name order.
  std::map<std::string, std::size_t, std::less<>> file_number;  // shard -> index into files_
  for (const auto& [shard, tensor] : a_tensor_in) {
    const std::filesystem::path path = dir / shard;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
      throw Error(path.string() + ": shard file does not exist (" + where + " puts tensor '" + tensor + "' in it)");
    file_number.emplace(shard, files_.size());
    files_.push_back(SafetensorsFile::open(path));
  }

  // Every tensor of every shard is listed, for that shard: a tensor listed for another shard
  // is either stored twice (that shard holds it too) or in the wrong place.
  for (const auto& [shard, number] : file_number) {
    for (const std::string& name : files_[number].names()) {
      const auto listed = shard_of.find(name);
      if (listed == shard_of.end())
        throw Error(files_[number].path().string() + ": holds tensor '" + name + "', which " + where + " does not list");
      if (listed->second != shard) {
        const bool twice = files_[file_number.find(listed->second)->second].contains(name);
        throw Error(where + ": tensor '" + name + "' is " +
                    (twice ? "stored twice, in shards '" + listed->second + "' and '" + shard +
                                 "' (shards must not overlap: each tensor is stored once)"
                           : "in shard '" + shard + "', but the index puts it in shard '" + listed->second + "'"));
      }
      file_of_tensor_.emplace(name, number);
    }
  }
  // ... and every tensor the index lists is in its shard.
  for (const auto& [tensor, shard] : shard_of)
    if (!contains(tensor))
      throw Error(where + ": tensor '" + tensor + "' is put in shard '" + shard + "', which does not hold it (" +
                  (dir / shard).string() + ")");
}

inline std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> names;
  names.reserve(file_of_tensor_.size());
  for (const auto& entry : file_of_tensor_) names.push_back(entry.first);
  return names;
}

inline const SafetensorsFile& TensorStore::file(std::string_view name) const {
  const auto found = file_of_tensor_.find(name);
  if (found == file_of_tensor_.end()) throw Error(path_.string() + ": no tensor named '" + std::string(name) + "'");
  return files_[found->second];
}

}  // namespace circuitry::io

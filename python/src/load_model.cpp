// The model handles of one scalar type (double when CIRCUITRY_PY_DOUBLE is 1, else float), for every registered architecture
// (python/CMakeLists.txt compiles this file once for float and once for double, as two objects:
// the library's templates are instantiated here and nowhere else in the extension).
#include "model_impl.hpp"

namespace circuitry::python {

namespace {
using Scalar = std::conditional_t<CIRCUITRY_PY_DOUBLE, double, float>;

std::shared_ptr<const ModelHandle> load(const std::filesystem::path& path) {
  auto checkpoint = io::load_model_directory<Scalar>(path);
  std::shared_ptr<const ModelHandle> handle;
  with_architecture(checkpoint.config,
                    [&]<class Arch>() { handle = std::make_shared<ModelImpl<Arch, Scalar>>(std::move(checkpoint)); });
  return handle;
}
}  // namespace

#if CIRCUITRY_PY_DOUBLE
std::shared_ptr<const ModelHandle> load_model_double(const std::filesystem::path& path) { return load(path); }
#else
std::shared_ptr<const ModelHandle> load_model_float(const std::filesystem::path& path) { return load(path); }
#endif

}  // namespace circuitry::python

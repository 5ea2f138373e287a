#pragma once
// A result's JSON (api/results.hpp) as Python objects: dicts, lists, numbers, strings and None,
// so a Python result has the keys and values of the command line's file.
#include <cstdint>
#include <string>

#include <circuitry/api/results.hpp>

#include "bindings.hpp"

namespace circuitry::python {

inline nb::object to_python(const api::Json& j) {
  switch (j.type()) {
    case api::Json::value_t::null: return nb::none();
    case api::Json::value_t::boolean: return nb::bool_(j.get<bool>());
    case api::Json::value_t::number_integer: return nb::int_(j.get<std::int64_t>());
    case api::Json::value_t::number_unsigned: return nb::int_(j.get<std::uint64_t>());
    case api::Json::value_t::number_float: return nb::float_(j.get<double>());
    case api::Json::value_t::string: return nb::str(j.get_ref<const std::string&>().c_str());
    case api::Json::value_t::array: {
      nb::list l;
      for (const auto& v : j) l.append(to_python(v));
      return l;
    }
    case api::Json::value_t::object: {
      nb::dict d;
      for (const auto& [key, value] : j.items()) d[key.c_str()] = to_python(value);
      return d;
    }
    default: throw Error("internal: a result holds a JSON value of no Python type");
  }
}

/// The result, refused when it holds a NaN or an infinity (as the command line refuses it).
inline nb::dict result_dict(const api::Json& j) {
  api::require_finite(j);
  return nb::cast<nb::dict>(to_python(j));
}

}  // namespace circuitry::python

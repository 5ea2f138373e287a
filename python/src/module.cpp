// circuitry._circuitry: the compiled half of the Python package (python/circuitry is the other).
#include <nanobind/nanobind.h>

#include <circuitry/core/error.hpp>

#include "bindings.hpp"

NB_MODULE(_circuitry, m) {
  namespace nb = nanobind;
  // circuitry::Error (bad input of any kind) is circuitry.Error, a ValueError, with the library's message.
  nb::exception<circuitry::Error>(m, "Error", PyExc_ValueError);
  m.attr("__version__") = CIRCUITRY_VERSION;
  circuitry::python::bind_text(m);
  circuitry::python::bind_graph(m);
  circuitry::python::bind_model(m);
  circuitry::python::bind_registry(m);
}

#pragma once
// Long runs release the GIL; the library's progress callbacks come back to Python here. Each
// call takes the GIL, checks for Ctrl-C (PyErr_CheckSignals: a KeyboardInterrupt leaves the run
// as a C++ exception, nanobind's python_error, and reaches the caller as itself) and calls the
// user's callback, if any, with (done, total). An exception raised by that callback stops the
// run the same way.
#include <cstddef>

#include <nanobind/nanobind.h>

#include "model_handle.hpp"

namespace circuitry::python {

namespace nb = nanobind;

/// `callback` (None or a callable) must outlive the run: the binding's argument does.
inline Progress python_progress(const nb::object& callback) {
  const nb::object* user = callback.is_none() ? nullptr : &callback;  // no reference counting off the GIL
  return [user](std::size_t done, std::size_t total) {
    nb::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw nb::python_error();
    if (user) (*user)(done, total);
  };
}

/// Between the steps of a run without progress reports (before and after it): Ctrl-C pressed
/// meanwhile raises KeyboardInterrupt. Called with the GIL held.
inline void check_interrupt() {
  if (PyErr_CheckSignals() != 0) throw nb::python_error();
}

}  // namespace circuitry::python

// The names users choose among (api/registry.hpp), as circuitry.choices(kind): each entry's name,
// summary, options with their defaults, and what it needs.
#include <string>

#include <nanobind/stl/string.h>

#include <circuitry/api/ground_truths.hpp>
#include <circuitry/api/registry.hpp>

#include "bindings.hpp"

namespace circuitry::python {

namespace {

const api::Choices& choices_named(const std::string& kind) {
  if (kind == "methods") return api::methods();
  if (kind == "metrics") return api::metrics();
  if (kind == "ablations") return api::ablations();
  if (kind == "positions") return api::position_modes();
  if (kind == "tasks") return api::task_generators();
  if (kind == "architectures") return api::architectures();
  if (kind == "model_formats") return api::model_formats();
  throw Error("unknown kind of choice '" + kind +
              "' (choose methods, metrics, ablations, positions, tasks, architectures, model_formats or ground_truths)");
}

}  // namespace

void bind_registry(nb::module_& m) {
  m.def(
      "choices",
      [](const std::string& kind) {
        nb::list out;
        if (kind == "ground_truths") {
          for (const api::ShippedGroundTruth& g : api::shipped_ground_truths()) {
            nb::dict d;
            d["name"] = g.name, d["file"] = g.file;
            out.append(d);
          }
          return out;
        }
        for (const api::Choice& c : choices_named(kind)) {
          nb::list options;
          for (const api::OptionInfo& o : c.options) {
            nb::dict od;
            od["name"] = o.name, od["default"] = o.default_value, od["help"] = o.help;
            options.append(od);
          }
          nb::dict d;
          d["name"] = c.name, d["summary"] = c.summary, d["options"] = options, d["needs"] = c.needs;
          out.append(d);
        }
        return out;
      },
      nb::arg("kind"),
      "The names circuitry accepts for one kind of choice (methods, metrics, ablations, positions, tasks, architectures, "
      "model_formats, ground_truths): a list of dicts with each one's name, summary, options and defaults, and needs.");
}

}  // namespace circuitry::python

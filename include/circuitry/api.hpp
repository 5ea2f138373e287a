#pragma once
// The front door: what the command line and the Python package both stand on (DESIGN.md
// section 1, the api row): the names users choose among, the runs by name, the results as JSON
// and their plots.
#include "circuitry/api/ground_truths.hpp"
#include "circuitry/api/registry.hpp"
#include "circuitry/api/results.hpp"
#include "circuitry/api/runs.hpp"
#include "circuitry/api/task_generators.hpp"
#include "circuitry/patching/attribution_by_name.hpp"

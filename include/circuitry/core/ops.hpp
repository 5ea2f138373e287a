#pragma once
// Every tensor op, each with its forward and its backward (one tape entry per call).
#include "circuitry/core/ops/attention.hpp"
#include "circuitry/core/ops/elementwise.hpp"
#include "circuitry/core/ops/embedding.hpp"
#include "circuitry/core/ops/activations.hpp"
#include "circuitry/core/ops/layer_norm.hpp"
#include "circuitry/core/ops/matmul.hpp"
#include "circuitry/core/ops/norm_linear.hpp"
#include "circuitry/core/ops/pick_sets.hpp"
#include "circuitry/core/ops/qk_norm.hpp"
#include "circuitry/core/ops/reduce.hpp"
#include "circuitry/core/ops/slice.hpp"
#include "circuitry/core/ops/softmax.hpp"

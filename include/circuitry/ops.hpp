#pragma once
// Every tensor op, each with its forward and its backward (one tape entry per call).
#include "circuitry/ops/attention.hpp"
#include "circuitry/ops/elementwise.hpp"
#include "circuitry/ops/embedding.hpp"
#include "circuitry/ops/activations.hpp"
#include "circuitry/ops/layer_norm.hpp"
#include "circuitry/ops/matmul.hpp"
#include "circuitry/ops/norm_linear.hpp"
#include "circuitry/ops/pick_sets.hpp"
#include "circuitry/ops/qk_norm.hpp"
#include "circuitry/ops/reduce.hpp"
#include "circuitry/ops/slice.hpp"
#include "circuitry/ops/softmax.hpp"

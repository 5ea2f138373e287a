#pragma once
// Circuit-quality arithmetic (DESIGN.md section 2, "Circuit quality"): faithfulness, the MIB
// areas CPR and CMD, ROC against a ground-truth edge set with ACDC's pessimistic area, and
// Spearman rank correlation for comparing two scorings. Pure math: the metric values come
// from whoever ran the model.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <numeric>
#include <string>
#include <vector>

#include "circuitry/circuits/pruning.hpp"
#include "circuitry/core/error.hpp"
#include "circuitry/graph/graph.hpp"

namespace circuitry {

/// f(C) = (M(C) - M(empty)) / (M(full) - M(empty)), M(empty) being the run with every edge
/// patched (MIB; EAP-IG evaluate_area_under_curve). 1 = the circuit recovers the full model.
inline double faithfulness(double m_circuit, double m_empty, double m_full) {
  require(m_full != m_empty, "faithfulness is undefined: the full model and the empty circuit score the same (" +
                                 std::to_string(m_full) + ")");
  return (m_circuit - m_empty) / (m_full - m_empty);
}

/// The circuit sizes of the MIB circuit track, in percent of all edges.
inline constexpr std::array<double, 10> mib_percentages = {0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100};
/// The same as fractions, spelled as MIB's `percentages` tuple so edge counts match it exactly.
inline constexpr std::array<double, 10> mib_fractions = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0};

/// Edges in the circuit for one fraction: MIB's int(pct * n_edges), i.e. rounded down.
inline std::size_t mib_edge_count(double fraction, std::size_t n_edges) {
  require(fraction >= 0 && fraction <= 1, "edge fraction " + std::to_string(fraction) + " is outside [0, 1]");
  return static_cast<std::size_t>(fraction * static_cast<double>(n_edges));
}

/// One point of a faithfulness curve: the circuit's share of all edges and its faithfulness.
/// MIB's curve: for each f in mib_fractions, c = top_n(graph, scores, mib_edge_count(f, n_edges))
/// (or greedy), prune_dead_ends(c), point {f, faithfulness of c}; the x value is f, not the
/// number of edges left after pruning.
struct CurvePoint {
  double fraction;
  double value;
};

/// Trapezoid area under a curve over the edge fraction, between the first and the last point
/// only: nothing is extrapolated to 0 or 1. This is MIB's rule (evaluate_area_under_curve), so
/// over mib_fractions the x-range is [0.001, 1] and a constant curve f = 1 has area 0.999.
/// With log_x the abscissa is ln(fraction) (MIB's log_scale option). Fractions must lie in
/// [0, 1] (in (0, 1] with log_x) and must not decrease.
inline double area_under(const std::vector<CurvePoint>& points, bool log_x = false) {
  double area = 0;
  for (std::size_t i = 0; i < points.size(); ++i) {
    const CurvePoint& p = points[i];
    require(std::isfinite(p.value), "curve point " + std::to_string(i) + " has a non-finite value");
    require(p.fraction >= 0 && p.fraction <= 1 && (!log_x || p.fraction > 0),
            "curve point " + std::to_string(i) + " has edge fraction " + std::to_string(p.fraction) +
                (log_x ? ", outside (0, 1] (log scale)" : ", outside [0, 1]"));
    if (i == 0) continue;
    const CurvePoint& q = points[i - 1];
    require(p.fraction >= q.fraction, "curve points must be sorted by edge fraction (point " + std::to_string(i) +
                                          " comes before point " + std::to_string(i - 1) + ")");
    const double dx = log_x ? std::log(p.fraction) - std::log(q.fraction) : p.fraction - q.fraction;
    area += dx * (p.value + q.value) / 2;
  }
  return area;
}

/// CPR (MIB): area under the faithfulness curve. Higher is better.
inline double cpr(const std::vector<CurvePoint>& faithfulness_curve, bool log_x = false) {
  return area_under(faithfulness_curve, log_x);
}

/// CMD (MIB): area under |1 - f|, taken pointwise before the trapezoid as MIB does. Lower is better.
inline double cmd(const std::vector<CurvePoint>& faithfulness_curve, bool log_x = false) {
  std::vector<CurvePoint> distance = faithfulness_curve;
  for (CurvePoint& p : distance) p.value = std::fabs(1 - p.value);
  return area_under(distance, log_x);
}

/// Trapezoid area under (x[i], y[i]), x non-decreasing.
inline double trapezoid_area(const std::vector<double>& x, const std::vector<double>& y) {
  require(x.size() == y.size(), "trapezoid_area: x and y differ in length");
  double area = 0;
  for (std::size_t i = 1; i < x.size(); ++i) area += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2;
  return area;
}

/// ACDC's pessimistic ROC area (notebooks/roc_plot_generator.py, pessimistic_auc): for points
/// sorted by fpr, then tpr, the area under the step function that keeps the lower tpr until
/// fpr increases, i.e. sum over i of (fpr[i+1] - fpr[i]) * tpr[i]. Equal to ACDC's
/// sum (1 - fpr[i+1]) (tpr[i+1] - tpr[i]) for curves from (0, 0) to (1, 1).
inline double pessimistic_area(const std::vector<double>& fpr, const std::vector<double>& tpr) {
  require(fpr.size() == tpr.size(), "pessimistic_area: fpr and tpr differ in length");
  double area = 0;
  for (std::size_t i = 0; i + 1 < fpr.size(); ++i) {
    require(fpr[i + 1] >= fpr[i] && tpr[i + 1] >= tpr[i], "pessimistic_area: the ROC points are not monotone");
    area += (fpr[i + 1] - fpr[i]) * tpr[i];
  }
  return area;
}

struct RocCurve {
  std::vector<double> fpr, tpr;  // from (0, 0) to (1, 1)
  double auc_trapezoid = 0;
  double auc_pessimistic = 0;
};

/// ROC of `scores` against a ground-truth edge set (DESIGN.md section 2; ACDC, EAP): sweep a
/// threshold over |score| from high to low; each distinct |score| is one step (tied edges enter
/// together); TPR = true edges above the threshold / true edges, FPR likewise over the other
/// edges. The curve runs from (0, 0) to (1, 1). `truth` has one flag per edge.
inline RocCurve roc(const Graph& graph, const std::vector<double>& scores, const std::vector<std::uint8_t>& truth) {
  require(truth.size() == graph.n_edges(), "ground truth has " + std::to_string(truth.size()) +
                                               " flags for a graph of " + std::to_string(graph.n_edges()) + " edges");
  const std::vector<std::size_t> order = rank_edges(graph, scores, /*absolute=*/true);
  const auto positives =
      static_cast<std::size_t>(std::count_if(truth.begin(), truth.end(), [](std::uint8_t t) { return t != 0; }));
  const std::size_t negatives = truth.size() - positives;
  require(positives > 0, "ROC is undefined: the ground truth has no edges");
  require(negatives > 0, "ROC is undefined: the ground truth contains every edge");

  RocCurve curve;
  curve.fpr.push_back(0);
  curve.tpr.push_back(0);
  std::size_t tp = 0, fp = 0;
  for (std::size_t i = 0; i < order.size(); ++i) {
    (truth[order[i]] ? tp : fp) += 1;
    const bool step_ends = i + 1 == order.size() || std::fabs(scores[order[i + 1]]) != std::fabs(scores[order[i]]);
    if (!step_ends) continue;
    curve.fpr.push_back(static_cast<double>(fp) / static_cast<double>(negatives));
    curve.tpr.push_back(static_cast<double>(tp) / static_cast<double>(positives));
  }
  curve.auc_trapezoid = trapezoid_area(curve.fpr, curve.tpr);
  curve.auc_pessimistic = pessimistic_area(curve.fpr, curve.tpr);
  return curve;
}

namespace detail {

/// 1-based ranks, tied values sharing their average rank (scipy.stats.rankdata 'average').
inline std::vector<double> average_ranks(const std::vector<double>& v) {
  std::vector<std::size_t> order(v.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(v.size());
  for (std::size_t i = 0; i < order.size();) {
    std::size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double rank = static_cast<double>(i + j) / 2 + 1;
    for (std::size_t k = i; k <= j; ++k) ranks[order[k]] = rank;
    i = j + 1;
  }
  return ranks;
}

}  // namespace detail

/// Spearman rank correlation: the Pearson correlation of the average ranks (scipy.stats.spearmanr).
/// Throws Error for different lengths, fewer than two values, NaN, or a constant vector.
inline double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  require(a.size() == b.size(), "spearman: the vectors differ in length (" + std::to_string(a.size()) + " and " +
                                    std::to_string(b.size()) + ")");
  require(a.size() >= 2, "spearman: needs at least two values");
  for (std::size_t i = 0; i < a.size(); ++i)
    require(!std::isnan(a[i]) && !std::isnan(b[i]), "spearman: value " + std::to_string(i) + " is NaN");
  const std::vector<double> ra = detail::average_ranks(a), rb = detail::average_ranks(b);
  const double mean = static_cast<double>(a.size() + 1) / 2;  // the mean rank, ties or not
  double sab = 0, saa = 0, sbb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  require(saa > 0 && sbb > 0, "spearman: undefined for a constant vector");
  return sab / std::sqrt(saa * sbb);
}

/// The share of the k entries of a largest in |value| that are also among the k largest of b:
/// whether two scorings would pick the same top-k circuit. Ties are broken by index.
inline double top_k_overlap(const std::vector<double>& a, const std::vector<double>& b, std::size_t k) {
  require(a.size() == b.size(), "top_k_overlap: the vectors differ in length (" + std::to_string(a.size()) + " and " +
                                    std::to_string(b.size()) + ")");
  require(k > 0 && k <= a.size(), "top_k_overlap: k = " + std::to_string(k) + " must be in 1.." + std::to_string(a.size()));
  auto top = [k](const std::vector<double>& v) {
    std::vector<std::size_t> order(v.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return std::abs(v[x]) > std::abs(v[y]); });
    order.resize(k);
    std::sort(order.begin(), order.end());
    return order;
  };
  const std::vector<std::size_t> ta = top(a), tb = top(b);
  std::vector<std::size_t> common;
  std::set_intersection(ta.begin(), ta.end(), tb.begin(), tb.end(), std::back_inserter(common));
  return static_cast<double>(common.size()) / static_cast<double>(k);
}

}  // namespace circuitry

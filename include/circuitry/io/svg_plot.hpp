#pragma once
// A small SVG line-plot writer with no dependencies, for the reports of circuit discovery:
// faithfulness curves (x = edge fraction or count, often log-scaled; y = faithfulness) and ROC
// curves (with the y = x diagonal). Title, axis labels, "nice" ticks with a light grid, any
// number of named series (polyline + markers) and a legend to the right of the axes.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "circuitry/core/error.hpp"
#include "circuitry/io/atomic_file.hpp"

namespace circuitry::io {

struct PlotSeries {
  std::string name;
  std::vector<double> x, y;
  std::string color;  // any SVG colour; empty picks the next one of a colour-blind-safe palette
  bool dashed = false;
  bool markers = true;
};

struct LinePlot {
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;
  bool log_x = false;     // log10 x axis; every x must be > 0
  bool diagonal = false;  // dashed grey y = x reference line (ROC)
  // Axis limits; unset ones follow the data, widened to the nearest tick.
  std::optional<double> x_min, x_max, y_min, y_max;
  int width = 640, height = 420;
};

namespace detail {

inline std::string svg_escape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

/// printf-style formatting of one double.
inline std::string svg_number(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value + 0.0);  // + 0.0 turns -0 into 0
  return buffer;
}

/// 1, 2 or 5 times a power of ten, close to range / target_count.
inline double plot_tick_step(double range, int target_count) {
  const double raw = range / target_count;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double fraction = raw / magnitude;
  return (fraction < 1.5 ? 1 : fraction < 3.5 ? 2 : fraction < 7.5 ? 5 : 10) * magnitude;
}

/// Linear axis: limits (widened to whole steps when not fixed) and tick positions.
struct PlotAxis {
  double lo = 0, hi = 1;
  std::vector<double> ticks;
};

inline PlotAxis plot_linear_axis(double data_lo, double data_hi, std::optional<double> fixed_lo,
                                 std::optional<double> fixed_hi) {
  double lo = fixed_lo.value_or(data_lo), hi = fixed_hi.value_or(data_hi);
  if (hi - lo <= 0) {  // a single value: give it some room
    const double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    if (!fixed_lo) lo -= pad;
    if (!fixed_hi || hi <= lo) hi = lo + 2 * pad;
  }
  const double step = plot_tick_step(hi - lo, 5);
  if (!fixed_lo) lo = std::floor(lo / step + 1e-9) * step;
  if (!fixed_hi) hi = std::ceil(hi / step - 1e-9) * step;
  PlotAxis axis{lo, hi, {}};
  for (double t = std::ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step)
    axis.ticks.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  return axis;
}

/// Log axis in log10 units: ticks at powers of ten, plus 2x and 5x when the range spans few decades.
inline PlotAxis plot_log_axis(double data_lo, double data_hi, std::optional<double> fixed_lo,
                              std::optional<double> fixed_hi) {
  double lo = fixed_lo ? std::log10(*fixed_lo) : std::floor(std::log10(data_lo) + 1e-9);
  double hi = fixed_hi ? std::log10(*fixed_hi) : std::ceil(std::log10(data_hi) - 1e-9);
  if (hi <= lo) hi = lo + 1;
  PlotAxis axis{lo, hi, {}};
  const bool minor = hi - lo <= 3;
  for (double decade = std::floor(lo); decade <= hi; ++decade)
    for (double m : {1.0, 2.0, 5.0}) {
      if (m != 1 && !minor) continue;
      const double t = decade + std::log10(m);
      if (t >= lo - 1e-9 && t <= hi + 1e-9) axis.ticks.push_back(t);
    }
  return axis;
}

/// Writes `text` to `path` atomically (io/atomic_file.hpp); Error names the file on failure.
inline void write_text_document(const std::filesystem::path& path, const std::string& text) {
  write_file_atomically(path, text);
}

}  // namespace detail

/// The plot as a standalone SVG document. Throws Error for mismatched or non-finite data.
inline std::string render_line_plot(const LinePlot& plot) {
  // Okabe-Ito palette: distinguishable with every common colour-vision deficiency.
  static constexpr const char* palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                            "#E69F00", "#56B4E9", "#000000", "#F0E442"};
  require(!plot.series.empty(), "plot '" + plot.title + "' has no series");
  require(plot.width >= 200 && plot.height >= 150, "plot '" + plot.title + "' is too small (at least 200 x 150)");

  double x_lo = HUGE_VAL, x_hi = -HUGE_VAL, y_lo = HUGE_VAL, y_hi = -HUGE_VAL;
  for (const PlotSeries& s : plot.series) {
    require(s.x.size() == s.y.size(), "series '" + s.name + "' has " + std::to_string(s.x.size()) + " x values but " +
                                          std::to_string(s.y.size()) + " y values");
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      require(std::isfinite(s.x[i]) && std::isfinite(s.y[i]),
              "series '" + s.name + "': point " + std::to_string(i) + " is not finite");
      require(!plot.log_x || s.x[i] > 0,
              "series '" + s.name + "': point " + std::to_string(i) + " has x <= 0 on a log axis");
      x_lo = std::min(x_lo, s.x[i]);
      x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, s.y[i]);
      y_hi = std::max(y_hi, s.y[i]);
    }
  }
  if (x_lo > x_hi) x_lo = x_hi = plot.log_x ? 1 : 0;  // no points at all: an empty frame
  if (y_lo > y_hi) y_lo = y_hi = 0;
  for (const std::optional<double>& limit : {plot.x_min, plot.x_max, plot.y_min, plot.y_max})
    require(!limit || std::isfinite(*limit), "plot '" + plot.title + "': axis limits must be finite");
  require(!plot.log_x || ((!plot.x_min || *plot.x_min > 0) && (!plot.x_max || *plot.x_max > 0)),
          "plot '" + plot.title + "': log axis limits must be > 0");
  const detail::PlotAxis xa = plot.log_x ? detail::plot_log_axis(x_lo, x_hi, plot.x_min, plot.x_max)
                                         : detail::plot_linear_axis(x_lo, x_hi, plot.x_min, plot.x_max);
  const detail::PlotAxis ya = detail::plot_linear_axis(y_lo, y_hi, plot.y_min, plot.y_max);

  // Frame: room for tick labels and axis titles on the left and bottom, the legend on the right.
  std::size_t longest_name = 0;
  for (const PlotSeries& s : plot.series) longest_name = std::max(longest_name, s.name.size());
  const double legend_w = 40 + 7.0 * static_cast<double>(longest_name);
  const double left = 64, top = plot.title.empty() ? 16 : 40, bottom = 52;
  const double right = legend_w + 16;
  const double pw = plot.width - left - right, ph = plot.height - top - bottom;
  require(pw > 50 && ph > 50, "plot '" + plot.title + "' is too narrow for its legend");
  auto sx = [&](double x) { return left + (((plot.log_x ? std::log10(x) : x) - xa.lo) / (xa.hi - xa.lo)) * pw; };
  auto sy = [&](double y) { return top + ph - ((y - ya.lo) / (ya.hi - ya.lo)) * ph; };
  auto px = [](double v) { return detail::svg_number("%.2f", v); };

  std::string svg;
  svg += "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(plot.width) + "\" height=\"" +
         std::to_string(plot.height) + "\" viewBox=\"0 0 " + std::to_string(plot.width) + " " +
         std::to_string(plot.height) + "\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += "<defs><clipPath id=\"plot-area\"><rect x=\"" + px(left) + "\" y=\"" + px(top) + "\" width=\"" + px(pw) +
         "\" height=\"" + px(ph) + "\"/></clipPath></defs>\n";
  if (!plot.title.empty())
    svg += "<text x=\"" + px(left + pw / 2) +
           "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">" +
           detail::svg_escape(plot.title) + "</text>\n";

  // Grid and ticks.
  svg += "<g stroke=\"#e5e5e5\" stroke-width=\"1\">\n";
  for (double t : xa.ticks) {
    const double x = left + (t - xa.lo) / (xa.hi - xa.lo) * pw;
    svg += "<line x1=\"" + px(x) + "\" y1=\"" + px(top) + "\" x2=\"" + px(x) + "\" y2=\"" + px(top + ph) + "\"/>\n";
  }
  for (double t : ya.ticks)
    svg += "<line x1=\"" + px(left) + "\" y1=\"" + px(sy(t)) + "\" x2=\"" + px(left + pw) + "\" y2=\"" + px(sy(t)) +
           "\"/>\n";
  svg += "</g>\n<g fill=\"#333333\">\n";
  for (double t : xa.ticks) {
    const double x = left + (t - xa.lo) / (xa.hi - xa.lo) * pw;
    svg += "<text x=\"" + px(x) + "\" y=\"" + px(top + ph + 16) + "\" text-anchor=\"middle\">" +
           detail::svg_number("%g", plot.log_x ? std::pow(10.0, t) : t) + "</text>\n";
  }
  for (double t : ya.ticks)
    svg += "<text x=\"" + px(left - 6) + "\" y=\"" + px(sy(t) + 4) + "\" text-anchor=\"end\">" +
           detail::svg_number("%g", t) + "</text>\n";
  svg += "</g>\n";
  svg += "<rect x=\"" + px(left) + "\" y=\"" + px(top) + "\" width=\"" + px(pw) + "\" height=\"" + px(ph) +
         "\" fill=\"none\" stroke=\"#333333\" stroke-width=\"1\"/>\n";
  if (!plot.x_label.empty())
    svg += "<text x=\"" + px(left + pw / 2) + "\" y=\"" + px(plot.height - 12.0) + "\" text-anchor=\"middle\">" +
           detail::svg_escape(plot.x_label) + "</text>\n";
  if (!plot.y_label.empty())
    svg += "<text transform=\"translate(16," + px(top + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
           detail::svg_escape(plot.y_label) + "</text>\n";

  svg += "<g clip-path=\"url(#plot-area)\" fill=\"none\">\n";
  if (plot.diagonal) {  // y = x, sampled so that it is right on a log x axis too
    std::string points;
    for (int i = 0; i <= 64; ++i) {
      const double a = xa.lo + (xa.hi - xa.lo) * i / 64.0;
      const double x = plot.log_x ? std::pow(10.0, a) : a;
      points += px(sx(x)) + "," + px(sy(x)) + " ";
    }
    svg += "<polyline class=\"diagonal\" points=\"" + points +
           "\" stroke=\"#999999\" stroke-width=\"1\" stroke-dasharray=\"4 4\"/>\n";
  }
  for (std::size_t k = 0; k < plot.series.size(); ++k) {
    const PlotSeries& s = plot.series[k];
    const std::string color = s.color.empty() ? palette[k % std::size(palette)] : detail::svg_escape(s.color);
    const std::string dash = s.dashed ? " stroke-dasharray=\"6 4\"" : "";
    std::string points;
    for (std::size_t i = 0; i < s.x.size(); ++i) points += px(sx(s.x[i])) + "," + px(sy(s.y[i])) + " ";
    svg += "<g class=\"series\"><title>" + detail::svg_escape(s.name) + "</title>\n";
    svg += "<polyline points=\"" + points + "\" stroke=\"" + color + "\" stroke-width=\"2\"" + dash + "/>\n";
    if (s.markers)
      for (std::size_t i = 0; i < s.x.size(); ++i)
        svg += "<circle cx=\"" + px(sx(s.x[i])) + "\" cy=\"" + px(sy(s.y[i])) + "\" r=\"3\" fill=\"" + color + "\"/>\n";
    svg += "</g>\n";
  }
  svg += "</g>\n";

  // Legend, right of the axes.
  const double lx = left + pw + 16;
  svg += "<g class=\"legend\">\n";
  for (std::size_t k = 0; k < plot.series.size(); ++k) {
    const PlotSeries& s = plot.series[k];
    const std::string color = s.color.empty() ? palette[k % std::size(palette)] : detail::svg_escape(s.color);
    const double y = top + 10 + 20.0 * static_cast<double>(k);
    svg += "<line x1=\"" + px(lx) + "\" y1=\"" + px(y) + "\" x2=\"" + px(lx + 24) + "\" y2=\"" + px(y) +
           "\" stroke=\"" + color + "\" stroke-width=\"2\"" + (s.dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>\n";
    svg += "<text x=\"" + px(lx + 30) + "\" y=\"" + px(y + 4) + "\">" + detail::svg_escape(s.name) + "</text>\n";
  }
  svg += "</g>\n</svg>\n";
  return svg;
}

inline void write_line_plot(const std::filesystem::path& path, const LinePlot& plot) {
  detail::write_text_document(path, render_line_plot(plot));
}

}  // namespace circuitry::io

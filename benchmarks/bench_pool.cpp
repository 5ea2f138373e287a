// The thread pool's costs (core/parallel.hpp), which set kParallelGrain: the time from
// starting a loop of two tasks to its end when the other thread is spinning (loops back to back)
// and when it sleeps (after a pause), and, for an elementwise loop like a layer norm's, the size
// from which two threads beat one.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include <circuitry/backends/cpu/vector_kernels.hpp>

using namespace circuitry;
using Clock = std::chrono::steady_clock;

namespace {

double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

/// Median microseconds of one call of f over `runs` calls, each after `pause`.
template <class F>
double median_us(int runs, std::chrono::microseconds pause, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    if (pause.count()) std::this_thread::sleep_for(pause);
    const auto start = Clock::now();
    f();
    t.push_back(micros(Clock::now() - start));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

}  // namespace

int main() {
  std::printf("%d threads\n", num_threads());
  volatile int sink = 0;
  const double spinning = median_us(20000, std::chrono::microseconds(0), [&] { parallel_tasks(2, [&](std::size_t t) { sink = int(t); }); });
  const double sleeping = median_us(300, std::chrono::microseconds(2000), [&] { parallel_tasks(2, [&](std::size_t t) { sink = int(t); }); });
  std::printf("a loop of two empty tasks: %.2f us back to back (the other thread spinning), %.1f us after 2 ms (asleep)\n", spinning,
              sleeping);
  // y = x * a + b over rows of 768, serially and through parallel_for in two ranges.
  std::printf("%10s %12s %12s\n", "elements", "1 thread us", "pool us");
  std::size_t break_even = 0;
  for (std::size_t n = 1024; n <= (std::size_t{1} << 21); n *= 2) {
    std::vector<float> x(n, 1.5f), y(n);
    auto body = [&](std::size_t b, std::size_t e) { cpu::vec(y.data() + b, e - b) = cpu::vec(x.data() + b, e - b) * 1.0001f + 0.5f; };
    const double serial = median_us(2001, std::chrono::microseconds(0), [&] { body(0, n); });
    const double pooled = median_us(2001, std::chrono::microseconds(0), [&] { parallel_for(n, n / 2, body); });
    std::printf("%10zu %12.2f %12.2f\n", n, serial, pooled);
    if (!break_even && pooled < serial) break_even = n;
  }
  std::printf("spinning_handoff_us=%.2f sleeping_handoff_us=%.1f elementwise_break_even=%zu kParallelGrain=%zu\n", spinning, sleeping,
              break_even, kParallelGrain);
}

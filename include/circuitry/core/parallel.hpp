#pragma once
// Thread control: one persistent pool for every parallel loop of the library (kernels, GEMM
// blocks, exact patching's lanes). Eigen itself stays single-threaded.
//
// Why not OpenMP: a `#pragma omp parallel for` ends in a barrier that waits for every
// thread of the team, including one the kernel has descheduled because another program wants the
// core. With thousands of short regions per run, two threads on a busy two-core machine were up
// to 16x slower than on an idle one, and slower than one thread. Here a loop is a list of tasks
// that the calling thread and any idle worker claim one at a time from an atomic counter; the
// caller waits only for tasks a worker has actually claimed, never for a worker that has not
// woken up yet (that worker later finds nothing left and goes back to sleep). Waiting threads
// spin for some microseconds and then sleep on a condition variable, so they give their core
// back instead of burning it.
//
// Determinism: a loop's tasks are fixed by the caller from the shapes alone and write disjoint
// outputs, so which thread runs which task never changes a result: the same bytes for any
// thread count.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define CIRCUITRY_CPU_RELAX() _mm_pause()
#else
#define CIRCUITRY_CPU_RELAX() std::this_thread::yield()
#endif

namespace circuitry {

namespace detail {

/// A loop body erased to a function pointer and a context (no allocation per loop).
struct TaskLoop {
  void (*run)(const void* body, std::size_t task) = nullptr;
  const void* body = nullptr;
  std::size_t n_tasks = 0;
};

/// Pauses (tens of nanoseconds each) before a waiting thread sleeps: tens of microseconds, enough
/// to catch the next loop of a run without a futex round trip, too short to steal a busy core.
inline constexpr int kSpinsBeforeSleep = 1000;

/// The claim counter of a ticket whose loop is being set up: above any task index.
inline constexpr std::uint64_t kClosed = 0xffffffffu;

class ThreadPool {
 public:
  explicit ThreadPool(int threads) { resize(threads); }
  ~ThreadPool() { stop_workers(); }
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  /// Runs tasks 0..n_tasks-1 of `loop`; the calling thread takes part and returns when all are done.
  /// A task that throws does not stop the others; the first exception is rethrown here.
  void run(const TaskLoop& loop) {
    if (loop.n_tasks == 0) return;
    // One loop at a time: a loop inside a task, or one started by another program thread while
    // the pool is busy, runs on its own thread.
    std::unique_lock busy(run_mutex_, std::defer_lock);
    if (workers_.empty() || loop.n_tasks == 1 || loop.n_tasks >= kClosed || inside_task() || !busy.try_lock()) {
      std::exception_ptr first;
      for (std::size_t t = 0; t < loop.n_tasks; ++t) {
        try {
          loop.run(loop.body, t);
        } catch (...) {
          if (!first) first = std::current_exception();
        }
      }
      if (first) std::rethrow_exception(first);
      return;
    }
    // Close the ticket first: a worker still inside the previous loop must not claim a task of it
    // with this loop's task count. Then set the loop up and open it with its claim counter at 0.
    // Workers read loop_ only after a successful claim of this generation.
    const std::uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
    ticket_.store(std::uint64_t{gen} << 32 | kClosed, std::memory_order_seq_cst);
    loop_ = loop;
    error_ = nullptr;
    finished_.store(0, std::memory_order_relaxed);
    n_tasks_.store(loop.n_tasks, std::memory_order_release);
    ticket_.store(std::uint64_t{gen} << 32, std::memory_order_release);
    generation_.store(gen, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) wake_workers();
    in_task() = true;
    work(gen);
    in_task() = false;
    // Wait for the tasks that workers claimed and are still running.
    for (int spin = 0; finished_.load(std::memory_order_acquire) != loop.n_tasks; ++spin) {
      if (spin < kSpinsBeforeSleep) {
        CIRCUITRY_CPU_RELAX();
        continue;
      }
      std::unique_lock lock(sleep_mutex_);
      caller_sleeping_.store(true, std::memory_order_seq_cst);
      done_.wait(lock, [&] { return finished_.load(std::memory_order_seq_cst) == loop.n_tasks; });
      caller_sleeping_.store(false, std::memory_order_relaxed);
    }
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }

  void resize(int threads) {
    std::lock_guard idle(run_mutex_);
    stop_workers();
    stopping_.store(false);
    const int n = std::max(1, threads) - 1;
    for (int i = 0; i < n; ++i) workers_.emplace_back([this] { worker_loop(); });
  }

  /// True on a thread that is running a task: a loop started there runs serially.
  static bool& in_task() {
    thread_local bool flag = false;
    return flag;
  }
  static bool inside_task() { return in_task(); }

 private:
  // Claims and runs tasks of generation `gen` until none is left.
  void work(std::uint64_t gen) {
    std::uint64_t ticket = ticket_.load(std::memory_order_acquire);
    for (;;) {
      if ((ticket >> 32) != gen) return;  // that loop is over
      const std::uint64_t task = ticket & 0xffffffffu;
      // A later loop's count comes with that loop's closed ticket, so the claim below then fails.
      const std::size_t n = n_tasks_.load(std::memory_order_acquire);
      if (task >= n) return;
      if (!ticket_.compare_exchange_weak(ticket, ticket + 1, std::memory_order_acq_rel, std::memory_order_acquire))
        continue;
      try {
        loop_.run(loop_.body, static_cast<std::size_t>(task));
      } catch (...) {
        std::lock_guard lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
      }
      if (finished_.fetch_add(1, std::memory_order_seq_cst) + 1 == n && caller_sleeping_.load(std::memory_order_seq_cst)) {
        { const std::lock_guard lock(sleep_mutex_); }  // the caller is inside done_.wait, or sees the count
        done_.notify_one();
      }
      ticket = ticket_.load(std::memory_order_acquire);
    }
  }

  void worker_loop() {
    in_task() = true;  // a worker only ever runs tasks: loops inside them run serially
    std::uint32_t seen = generation_.load(std::memory_order_acquire);
    for (;;) {
      std::uint32_t now = generation_.load(std::memory_order_acquire);
      // A worker started just before a stop sees no new generation: it checks stopping_ too.
      for (int spin = 0; now == seen && spin < kSpinsBeforeSleep && !stopping_.load(std::memory_order_acquire); ++spin) {
        CIRCUITRY_CPU_RELAX();
        now = generation_.load(std::memory_order_acquire);
      }
      if (now == seen) {
        std::unique_lock lock(sleep_mutex_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        work_.wait(lock, [&] {
          return generation_.load(std::memory_order_seq_cst) != seen || stopping_.load(std::memory_order_seq_cst);
        });
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        now = generation_.load(std::memory_order_acquire);
      }
      if (stopping_.load(std::memory_order_acquire)) return;
      seen = now;
      const std::uint64_t ticket = ticket_.load(std::memory_order_acquire);
      if (static_cast<std::uint32_t>(ticket >> 32) == now) work(ticket >> 32);
    }
  }

  // A worker is either inside work_.wait (and is woken) or has yet to test the generation under
  // the mutex (and sees the new one): taking the mutex once between the two closes the gap.
  void wake_workers() {
    { const std::lock_guard lock(sleep_mutex_); }
    work_.notify_all();
  }

  void stop_workers() {
    if (workers_.empty()) return;
    stopping_.store(true, std::memory_order_release);
    generation_.fetch_add(1, std::memory_order_seq_cst);
    wake_workers();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  TaskLoop loop_;                             // read by a worker only after it has claimed a task
  std::atomic<std::size_t> n_tasks_{0};
  std::atomic<std::uint64_t> ticket_{0};      // generation << 32 | next unclaimed task (or kClosed)
  std::atomic<std::uint32_t> generation_{0};  // what sleeping workers wait on
  std::atomic<std::uint32_t> finished_{0};    // tasks of the current loop that are done
  std::atomic<int> sleepers_{0};
  std::mutex sleep_mutex_;
  std::condition_variable work_;  // sleeping workers: a new loop, or stop
  std::condition_variable done_;  // the sleeping caller: the last task is done
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<bool> stopping_{false};
  std::mutex run_mutex_;  // held by the thread whose loop the pool runs
  std::mutex error_mutex_;
  std::exception_ptr error_;  // the first exception a task of the current loop threw
};

/// The thread count when the program sets none: CIRCUITRY_NUM_THREADS, else OMP_NUM_THREADS (the
/// variable users already set for numeric code), else every core.
inline int default_thread_count() {
  for (const char* name : {"CIRCUITRY_NUM_THREADS", "OMP_NUM_THREADS"})
    if (const char* v = std::getenv(name)) {
      const int n = std::atoi(v);
      if (n > 0) return n;
    }
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

inline ThreadPool& thread_pool() {
  static ThreadPool pool(default_thread_count());
  return pool;
}

}  // namespace detail

/// Sets the number of threads for kernels and GEMMs, the calling thread included (0 leaves the
/// default: CIRCUITRY_NUM_THREADS or OMP_NUM_THREADS, else all cores). Call it between runs,
/// not from inside a parallel loop.
inline void set_num_threads(int n) {
  if (n <= 0 || n == detail::thread_pool().threads()) return;
  detail::thread_pool().resize(n);
}

inline int num_threads() { return detail::thread_pool().threads(); }

/// Runs body(t) for t = 0..n_tasks-1 on the pool. The tasks must write disjoint outputs; a loop
/// started inside a task runs serially on that thread.
template <class Body>
void parallel_tasks(std::size_t n_tasks, const Body& body) {
  detail::TaskLoop loop;
  loop.run = [](const void* b, std::size_t t) { (*static_cast<const Body*>(b))(t); };
  loop.body = &body;
  loop.n_tasks = n_tasks;
  detail::thread_pool().run(loop);
}

/// Runs body(begin, end) over [0, n) cut into ranges of at least `grain` items, each range worth a
/// wake-up of another thread (below 2 * grain items it runs on the calling thread alone). The
/// ranges depend on n and grain only.
template <class Body>
void parallel_for(std::size_t n, std::size_t grain, const Body& body) {
  grain = std::max<std::size_t>(1, grain);
  if (n < 2 * grain || num_threads() == 1 || detail::ThreadPool::inside_task()) {
    if (n > 0) body(std::size_t{0}, n);
    return;
  }
  // Up to 64 ranges, so a late or slow thread leaves little for the others to wait for.
  const std::size_t ranges = std::min<std::size_t>(n / grain, 64);
  const std::size_t step = (n + ranges - 1) / ranges;
  parallel_tasks((n + step - 1) / step, [&](std::size_t r) {
    const std::size_t begin = r * step;
    body(begin, std::min(n, begin + step));
  });
}

/// Multiply-adds (or element updates) a thread must get for the hand-off to pay. Measured by
/// bench_pool on the 2-core AVX-512 machine this was tuned on: a hand-off costs 0.8 us to a
/// spinning thread and 3 us to a sleeping one, but an elementwise loop (layer norm, GELU, a
/// residual sum) only gets faster on two threads from about 2^18 elements, where its data stops
/// fitting one core's caches; below that the second core mostly waits for cache lines. So a loop
/// is split only when each of at least two ranges gets 2^17 units.
inline constexpr std::size_t kParallelGrain = std::size_t{1} << 17;

/// body(i) for i in [0, n) on the thread pool, in ranges of at least kParallelGrain units of work
/// (work_per_item units each); small loops stay on the calling thread. Items must write disjoint
/// outputs.
template <class Body>
void parallel_items(std::size_t n, std::size_t work_per_item, const Body& body) {
  const std::size_t grain = std::max<std::size_t>(1, kParallelGrain / std::max<std::size_t>(1, work_per_item));
  parallel_for(n, grain, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) body(i);
  });
}

}  // namespace circuitry

#pragma once
// The processes of one run of the command line. Built with MPI (-DCIRCUITRY_WITH_MPI=ON, Open MPI
// found) and started by `mpirun -np N circuitry COMMAND ...`, they are N ranks: `attribute` (exact
// patching's groups of lanes, the gradient methods' parts), `evaluate --scores` (the curve's
// circuits) and ACDC's sweeps split their work over them (core/distribution.hpp), rank 0 alone
// prints and writes the outputs, and an error on any rank ends every rank (MPI_Abort) with a
// non-zero status.
// Otherwise, and for a plain `circuitry COMMAND`, there is one process and nothing changes.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <circuitry/core/distribution.hpp>
#include <circuitry/core/error.hpp>

#if CIRCUITRY_WITH_MPI
#include <circuitry/mpi/mpi_distribution.hpp>
#endif

namespace circuitry::cli {

class Processes {
 public:
  /// Starts MPI where the build has it and mpirun (Open MPI, or any PMI launcher) started this
  /// process; on ranks other than 0, standard output is discarded. A plain `circuitry ...` does
  /// not start MPI (a singleton start costs a third of a second per command).
  static void start(int& argc, char**& argv) {
#if CIRCUITRY_WITH_MPI
    if (!std::getenv("OMPI_COMM_WORLD_SIZE") && !std::getenv("PMI_SIZE") && !std::getenv("PMIX_RANK")) return;
    MPI_Init(&argc, &argv);
    instance().distribution_ = new MpiDistribution;
    if (instance().distribution_->rank() != 0) std::freopen("/dev/null", "w", stdout);
#else
    (void)argc, (void)argv;
#endif
  }

  /// Ends MPI after a run that succeeded on this rank.
  static void finish() {
#if CIRCUITRY_WITH_MPI
    if (!instance().distribution_) return;  // MPI was not started
    delete instance().distribution_;
    instance().distribution_ = nullptr;
    MPI_Finalize();
#endif
  }

  /// After an error on this rank: with other ranks, ends them all (they may be waiting on this one).
  static void abort_others(int status) {
#if CIRCUITRY_WITH_MPI
    if (count() > 1) MPI_Abort(MPI_COMM_WORLD, status);
#else
    (void)status;
#endif
  }

  /// The split of the work over the ranks, or null for one process.
  static const Distribution* distribution() { return count() > 1 ? instance().distribution_ : nullptr; }
  static std::size_t count() { return instance().distribution_ ? instance().distribution_->size() : 1; }
  /// Rank 0: the one process that prints progress and writes the outputs.
  static bool is_writer() { return !instance().distribution_ || instance().distribution_->rank() == 0; }

  /// Refuses to run `what` on several ranks when it does not split its work.
  static void require_one(const std::string& what) {
    require(count() == 1, what + " runs on one process; of the commands, `attribute`, `evaluate --scores`, `acdc`, `compare` and "
                                 "`learn-mask` split their work over MPI ranks (run the others without mpirun)");
  }

 private:
  static Processes& instance() {
    static Processes p;
    return p;
  }
  Distribution* distribution_ = nullptr;
};

}  // namespace circuitry::cli

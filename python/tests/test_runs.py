"""Long runs: progress reported, the GIL released, Ctrl-C (KeyboardInterrupt) and callback errors stop them."""
import _thread
import signal
import subprocess
import sys
import threading
import time

import pytest

import circuitry
from conftest import FIXTURES, write_random_gpt2

MODEL = FIXTURES / "gpt2-small3"


@pytest.fixture(scope="module")
def model():
    return circuitry.load_model(MODEL)


@pytest.fixture(scope="module")
def task():
    return circuitry.load_task(MODEL / "task.jsonl")


def test_exact_reports_progress(model, task):
    calls = []
    result = circuitry.attribute(model, task, method="exact", progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (model.graph.n_edges, model.graph.n_edges)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert result.scores.any()


def test_acdc_reports_progress_over_every_pass(model, task):
    calls = []
    circuitry.acdc(model, task, thresholds=[0.01, 0.1], progress=lambda done, total: calls.append((done, total)))
    total = calls[-1][1]
    assert calls[-1][0] == total and total == 2 * len(model.graph.ports)


def test_ctrl_c_stops_a_run(model, task):
    calls = []

    def press_ctrl_c(done, total):  # as if the user pressed Ctrl-C while the run goes on
        calls.append(done)
        _thread.interrupt_main()

    with pytest.raises(KeyboardInterrupt):
        circuitry.attribute(model, task, method="exact", progress=press_ctrl_c)
    assert len(calls) < model.graph.n_edges


def test_a_failing_callback_stops_the_run(model, task):
    def fail(done, total):
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        circuitry.acdc(model, task, threshold=0.01, progress=fail)


def test_runs_release_the_gil(model, task):
    ticks = 0
    finished = threading.Event()

    def run():
        for _ in range(3):  # the default sweep's 15 passes, one candidate per run: long enough to tell on a fast machine
            circuitry.acdc(model, task, lanes=1)
        finished.set()

    worker = threading.Thread(target=run)
    started = time.perf_counter()
    worker.start()
    while not finished.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    elapsed = time.perf_counter() - started
    assert elapsed > 0.05, "the run is too short to tell"
    assert ticks > elapsed / 0.01  # the main thread ran while the run computed


def test_sigint_stops_a_run_inside_the_library(tmp_path):
    """A real Ctrl-C (SIGINT to the process) while exact patching computes without the GIL."""
    model = write_random_gpt2(tmp_path / "wide", n_layer=6, n_head=8, n_embd=128, vocab=500)  # 3,628 edges: about 8 s
    script = f"""
import circuitry
model = circuitry.load_model({str(model)!r})
task = circuitry.make_task([list(range(1, 17))] * 16, [[1, 99] + list(range(3, 17))] * 16, [20] * 16, [21] * 16)
def progress(done, total):
    print(done, total, flush=True)
circuitry.attribute(model, task, method="exact", progress=progress, memory_budget=1)
print("finished", flush=True)
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = child.stdout.readline().split()  # the run has begun
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode != 0 and "KeyboardInterrupt" in err, err
    assert "finished" not in out
    reports = [tuple(map(int, first))] + [tuple(map(int, line.split())) for line in out.splitlines()]
    assert max(done for done, _ in reports) < reports[0][1], "the run went on to its end"

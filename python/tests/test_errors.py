"""Bad input raises circuitry.Error (a ValueError) with the command line's message."""
import shutil

import numpy as np
import pytest

import circuitry
from conftest import FIXTURES, cli_error

MODEL = FIXTURES / "gpt2-tiny"
TASK = MODEL / "task.jsonl"


def test_error_is_a_value_error():
    assert issubclass(circuitry.Error, ValueError)


def test_missing_model_names_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    message = cli_error("attribute", "--model", missing, "--task", TASK, "--method", "eap", "--out", tmp_path / "x.json")
    with pytest.raises(circuitry.Error) as e:
        circuitry.load_model(missing)
    assert str(e.value) == message


def test_unsupported_model_names_the_key(tmp_path):
    some = tmp_path / "mixtral"  # a config the loader refuses by its MoE keys
    some.mkdir()
    shutil.copy(FIXTURES / "hf-unsupported" / "mixtral.json", some / "config.json")
    message = cli_error("attribute", "--model", some, "--task", TASK, "--method", "eap", "--out", tmp_path / "x.json")
    with pytest.raises(circuitry.Error) as e:
        circuitry.load_model(some)
    assert str(e.value) == message


def test_bad_task_line_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"clean": [1, 2], "corrupted": [1], "answer": 3, "wrong": 4}\n')
    message = cli_error("attribute", "--model", MODEL, "--task", bad, "--method", "eap", "--out", tmp_path / "x.json")
    with pytest.raises(circuitry.Error) as e:
        circuitry.load_task(bad)
    assert str(e.value) == message and "line 1" in message


def test_ids_outside_the_vocabulary():
    model = circuitry.load_model(MODEL)
    task = circuitry.make_task([[1, 2, 99]], [[1, 2, 3]], [4], [5])
    with pytest.raises(circuitry.Error, match=r"task example 1: clean\[2\] = 99 is out of range for the model's vocabulary of 41"):
        circuitry.attribute(model, task, method="eap")


def test_unknown_names_and_options():
    model = circuitry.load_model(MODEL)
    task = circuitry.load_task(TASK)
    with pytest.raises(circuitry.Error, match="unknown metric 'logitdiff'"):
        circuitry.attribute(model, task, metric="logitdiff")
    with pytest.raises(circuitry.Error, match="unknown method 'eap2'"):
        circuitry.attribute(model, task, method="eap2")
    with pytest.raises(circuitry.Error, match="unknown ablation 'noise'"):
        circuitry.evaluate(model, task, circuit=np.zeros(model.graph.n_edges, dtype=np.uint8), ablation="noise")
    with pytest.raises(circuitry.Error, match="unknown edge 'a9.h0->logits'|a9.h0"):
        circuitry.evaluate(model, task, circuit=["a9.h0->logits"])
    with pytest.raises(circuitry.Error, match="unknown dtype"):
        circuitry.load_model(MODEL, dtype="float16")  # float32, float64 or bfloat16
    with pytest.raises(circuitry.Error, match="exactly one of top_n, threshold or greedy"):
        circuitry.prune(circuitry.attribute(model, task, method="eap"))
    with pytest.raises(circuitry.Error, match="ascending"):
        circuitry.acdc(model, task, thresholds=[0.1, 0.01])
    with pytest.raises(circuitry.Error, match="unknown task 'ioi2'"):
        circuitry.tasks.generate("ioi2", 3)

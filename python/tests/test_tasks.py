"""Tasks from Python lists, NumPy arrays, task files and the generators."""
import numpy as np
import pytest

import circuitry
from conftest import FIXTURES, read_json, run_cli

TASK = FIXTURES / "gpt2-tiny" / "task.jsonl"


@pytest.mark.parametrize("kind, make", [("ioi", circuitry.tasks.ioi), ("greater-than", circuitry.tasks.greater_than),
                                        ("docstring", circuitry.tasks.docstring), ("induction", circuitry.tasks.induction)])
def test_generators_write_the_cli_task(tmp_path, kind, make):
    out = tmp_path / "task.jsonl"
    run_cli("task", kind, "--n", 6, "--seed", 3, "--out", out)
    task = make(6, seed=3)
    assert task.lines == out.read_text()
    assert len(task) == 6
    assert task.to_jsonl() == circuitry.load_task(out).to_jsonl()


def test_generator_with_a_models_tokenizer(tmp_path):
    tokenizer_dir = FIXTURES / "tokenizer" / "spm-legacy"
    out = tmp_path / "task.jsonl"
    run_cli("task", "ioi", "--n", 3, "--model", tokenizer_dir, "--out", out)
    tokenizer = circuitry.load_tokenizer(str(tokenizer_dir))
    assert circuitry.tasks.ioi(3, tokenizer=tokenizer).lines == out.read_text()
    assert circuitry.tasks.ioi(3).lines != out.read_text()  # GPT-2's ids otherwise


def test_task_from_lists_and_arrays_equals_the_file():
    lines = [read_json_line(line) for line in TASK.read_text().splitlines()]
    from_lists = circuitry.make_task([l["clean"] for l in lines], [l["corrupted"] for l in lines],
                                     [l["answer"] for l in lines], [l["wrong"] for l in lines])
    assert from_lists.to_jsonl() == circuitry.load_task(TASK).to_jsonl()
    assert from_lists.examples[0] == {"clean": lines[0]["clean"], "corrupted": lines[0]["corrupted"],
                                      "answer": [lines[0]["answer"]], "wrong": [lines[0]["wrong"]]}
    clean = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int64)
    corrupted = np.array([[1, 2, 7], [4, 8, 6]], dtype=np.int32)
    task = circuitry.make_task(clean, corrupted, answer=np.array([9, 10]), wrong=[[11, 12], 13])
    assert [e["clean"] for e in task.examples] == clean.tolist()
    assert [e["wrong"] for e in task.examples] == [[11, 12], [13]]


def test_answer_free_task_serves_kl_only():
    task = circuitry.make_task([[1, 2, 3]], [[1, 2, 4]])
    model = circuitry.load_model(FIXTURES / "gpt2-tiny")
    assert circuitry.attribute(model, task, method="eap-ig", metric="kl").scores.any()
    with pytest.raises(circuitry.Error, match="needs \"answer\" and \"wrong\""):
        circuitry.attribute(model, task, method="eap")


def test_tokenizer_round_trip():
    gpt2 = circuitry.gpt2_tokenizer()
    ids = gpt2.encode("When Mary and John went to the store")
    assert ids[:2] == [2215, 5335]
    assert gpt2.decode(ids) == "When Mary and John went to the store"
    assert gpt2.vocab_size == 50257 and gpt2.bos is None
    gguf = circuitry.load_model(FIXTURES / "gguf-gpt2" / "model.gguf")
    assert gguf.tokenizer is not None and circuitry.load_model(FIXTURES / "gpt2-tiny").tokenizer is None


def read_json_line(line):
    import json
    return json.loads(line)

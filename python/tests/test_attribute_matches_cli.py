"""Every attribution method's scores from Python equal the command line's, number for number."""
import numpy as np
import pytest

import circuitry
from conftest import FIXTURES, read_json, run_cli

# One fixture per family of loader and architecture: GPT-2 (HF), attention-only, Pythia (parallel block),
# Llama with grouped-query attention, TransformerLens, a GGUF file.
MODELS = ["gpt2-tiny", "attn-only", "hf-pythia", "hf-llama-gqa", "tl-gelu", "gguf-qwen2/model.gguf"]
METHODS = ["eap", "eap-ig", "clean-corrupted", "gim", "atp-star", "exact"]


def task_file(model: str):
    return FIXTURES / model.split("/")[0] / "task.jsonl"


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method", METHODS)
def test_scores_equal_the_cli(tmp_path, model_name, method):
    path = FIXTURES / model_name
    out = tmp_path / "scores.json"
    run_cli("attribute", "--model", path, "--task", task_file(model_name), "--method", method, "--out", out)
    expected = read_json(out)
    model = circuitry.load_model(path)
    result = circuitry.attribute(model, circuitry.load_task(task_file(model_name), tokenizer=model), method=method)
    assert result.method == expected["method"] == method
    assert result.clean_metric == expected["clean_metric"]
    assert result.corrupted_metric == expected["corrupted_metric"]
    assert list(result.edges) == list(expected["edges"]) == model.graph.edges
    assert result.edges == expected["edges"]  # exactly equal floats, edge for edge
    assert result.to_json() == expected
    assert isinstance(result.scores, np.ndarray) and result.scores.dtype == np.float64
    assert result.scores.tolist() == list(expected["edges"].values())
    assert any(s != 0 for s in result.scores), "a test on scores that are all 0 would prove little"


@pytest.mark.parametrize("options", [("--steps", "3"), ("--metric", "kl"), ("--positions", "all"), ("--dtype", "float64"),
                                     ("--memory-budget", "1")])
def test_options_equal_the_cli(tmp_path, options):
    path = FIXTURES / "gpt2-small3"
    out = tmp_path / "scores.json"
    run_cli("attribute", "--model", path, "--task", path / "task.jsonl", "--method", "eap-ig", *options, "--out", out)
    name, value = options[0].lstrip("-").replace("-", "_"), options[1]
    kwargs = {"steps": int(value)} if name == "steps" else {"memory_budget": int(value)} if name == "memory_budget" else {}
    model = circuitry.load_model(path, dtype=value if name == "dtype" else "float32")
    if name in ("metric", "positions"):
        kwargs[name] = value
    result = circuitry.attribute(model, circuitry.load_task(path / "task.jsonl"), method="eap-ig", **kwargs)
    assert result.to_json() == read_json(out)


def test_exact_on_selected_edges_equals_the_cli(tmp_path):
    path = FIXTURES / "gpt2-tiny"
    model = circuitry.load_model(path)
    chosen = model.graph.edges[3:9]
    selection = tmp_path / "edges.json"
    selection.write_text('{"edges": [' + ", ".join(f'"{e}"' for e in chosen) + "]}")
    out = tmp_path / "scores.json"
    run_cli("attribute", "--model", path, "--task", path / "task.jsonl", "--method", "exact", "--edges", selection, "--out", out)
    result = circuitry.attribute(model, circuitry.load_task(path / "task.jsonl"), method="exact", edges=chosen)
    assert result.to_json() == read_json(out)
    assert result.edges_scored == 6 and np.count_nonzero(result.scores) <= 6


def test_bfloat16_as_the_cli(tmp_path):
    """--dtype bfloat16: the CLI's scores where the CPU runs bfloat16 GEMMs, else the CLI's error."""
    path = FIXTURES / "gpt2-small3"
    out = tmp_path / "scores.json"
    r = run_cli("attribute", "--model", path, "--task", path / "task.jsonl", "--method", "eap", "--dtype", "bfloat16",
                "--out", out, ok=False)
    if r.returncode != 0:
        message = r.stderr.strip().splitlines()[-1].removeprefix("circuitry: error: ")
        assert "bfloat16 GEMMs are not available" in message
        with pytest.raises(circuitry.Error) as e:
            circuitry.load_model(path, dtype="bfloat16")
        assert str(e.value) == message
        return
    model = circuitry.load_model(path, dtype="bfloat16")
    assert model.dtype == "bfloat16"
    assert circuitry.attribute(model, circuitry.load_task(path / "task.jsonl"), method="eap").to_json() == read_json(out)


@pytest.mark.parametrize("method,cli_options,options", [
    ("atp-star", ("--qk-fix", "off"), {"qk_fix": False}),
    ("atp-star", ("--grad-drop", "off"), {"grad_drop": False}),
    ("gim", ("--softmax-temperature", "1.5", "--qkv-scales", "1,0.5,0.25"), {"softmax_temperature": 1.5, "qkv_scales": (1, 0.5, 0.25)}),
    ("gim", ("--freeze-norm", "off", "--mlp-scales", "1,1"), {"freeze_norm": False, "mlp_scales": [1, 1]}),
])
def test_method_options_equal_the_cli(tmp_path, method, cli_options, options):
    path = FIXTURES / "hf-llama-gqa"
    out = tmp_path / "scores.json"
    run_cli("attribute", "--model", path, "--task", path / "task.jsonl", "--method", method, *cli_options, "--out", out)
    model = circuitry.load_model(path)
    result = circuitry.attribute(model, circuitry.load_task(path / "task.jsonl", tokenizer=model), method=method, **options)
    assert result.to_json() == read_json(out)


def test_method_options_are_checked():
    path = FIXTURES / "gpt2-tiny"
    model = circuitry.load_model(path)
    task = circuitry.load_task(path / "task.jsonl")
    with pytest.raises(circuitry.Error, match="qk_fix is not an option of method 'gim'"):
        circuitry.attribute(model, task, method="gim", qk_fix=False)
    with pytest.raises(circuitry.Error, match="temperature must be a positive number"):
        circuitry.attribute(model, task, method="gim", softmax_temperature=0)

"""prune, evaluate, the MIB curve, ACDC, path patching, path sets, ROC and compare from Python equal the
command line's outputs (the circuit file byte for byte, every number exactly)."""
import json

import numpy as np
import pytest

import circuitry
from conftest import FIXTURES, read_json, run_cli

MODEL = FIXTURES / "gpt2-tiny"
TASK = MODEL / "task.jsonl"
TRUTH = ["a0.h1->a1.h0<k>", "a1.h0->logits", "input->logits"]


@pytest.fixture(scope="module")
def model():
    return circuitry.load_model(MODEL)


@pytest.fixture(scope="module")
def task():
    return circuitry.load_task(TASK)


@pytest.fixture(scope="module")
def eap_scores(model, task, tmp_path_factory):
    out = tmp_path_factory.mktemp("scores") / "eap.json"
    run_cli("attribute", "--model", MODEL, "--task", TASK, "--method", "eap", "--out", out)
    return out, circuitry.attribute(model, task, method="eap")


@pytest.mark.parametrize("mode", [("--top-n", "10"), ("--threshold", "0.05"), ("--greedy", "8"), ("--top-n", "10", "--no-prune")])
def test_prune_writes_the_cli_circuit(tmp_path, eap_scores, mode):
    scores_file, scores = eap_scores
    out = tmp_path / "circuit.json"
    run_cli("prune", "--scores", scores_file, *mode, "--out", out)
    key = mode[0].lstrip("-").replace("-", "_")
    value = float(mode[1]) if key == "threshold" else int(mode[1])
    circuit = circuitry.prune(scores, **{key: value}, no_prune="--no-prune" in mode)
    assert circuit.to_json() == out.read_text()
    expected = read_json(out)
    assert circuit.edges == [e for e, v in expected["edges"].items() if v["in_graph"]]
    assert circuit.n_edges > 0
    if mode == ("--top-n", "10"):  # how many edges were chosen and how many dead ends went, both said
        assert circuit.n_edges_before_pruning == 10 and circuit.n_edges == 9
        assert repr(circuit) == "<circuitry.Circuit: 9 of 46 edges (10 chosen, 1 removed as dead ends)>"


def test_evaluate_circuit_equals_the_cli(tmp_path, model, task, eap_scores):
    scores_file, scores = eap_scores
    circuit_file = tmp_path / "circuit.json"
    run_cli("prune", "--scores", scores_file, "--top-n", "12", "--out", circuit_file)
    for ablation in ["resample", "zero", "mean"]:
        out = tmp_path / f"eval-{ablation}.json"
        run_cli("evaluate", "--model", MODEL, "--task", TASK, "--circuit", circuit_file, "--ablation", ablation, "--out", out)
        r = circuitry.evaluate(model, task, circuitry.load_circuit(circuit_file, model.graph), ablation=ablation)
        assert r.__dict__ == read_json(out)


def test_mib_curve_equals_the_cli(tmp_path, model, task, eap_scores):
    scores_file, scores = eap_scores
    out = tmp_path / "curve.json"
    run_cli("evaluate", "--model", MODEL, "--task", TASK, "--scores", scores_file, "--out", out)
    assert circuitry.evaluate(model, task, scores=scores).__dict__ == read_json(out)


@pytest.mark.parametrize("options", [{}, {"ablation": "zero", "lanes": 1}, {"ablation": "mean", "metric": "logit_diff"}])
def test_acdc_equals_the_cli(tmp_path, model, task, options):
    out = tmp_path / "acdc"
    flags = [x for k, v in options.items() for x in ("--" + k, str(v))]
    run_cli("acdc", "--model", MODEL, "--task", TASK, "--thresholds", "0.001,0.01,0.1", *flags, "--out", out)
    expected = read_json(out / "acdc.json")
    r = circuitry.acdc(model, task, thresholds=[0.001, 0.01, 0.1], **options)
    assert r.thresholds == expected["thresholds"] and r.metric == expected["metric"] == options.get("metric", "kl")
    assert r.ablation == expected["ablation"]
    assert r.clean_metric == expected["clean_metric"]
    assert r.edges == expected["edges"]
    for mine, theirs in zip(r.circuits, expected["circuits"], strict=True):
        assert (mine.threshold, mine.n_edges, mine.distance, mine.metric, mine.runs) == (
            theirs["threshold"], theirs["n_edges"], theirs["distance"], theirs["metric"], theirs["runs"])
        assert mine.circuit.to_json() == (out / theirs["file"]).read_text()
    assert [c.n_edges for c in r.circuits] != [model.graph.n_edges] * 3


def test_acdc_on_a_start_circuit_equals_the_cli(tmp_path, model, task):
    edges = [e for i, e in enumerate(model.graph.edges) if i % 3 == 0]
    (tmp_path / "edges.json").write_text(json.dumps({"edges": edges}))
    out = tmp_path / "acdc"
    run_cli("acdc", "--model", MODEL, "--task", TASK, "--threshold", "0.001", "--edges", tmp_path / "edges.json", "--out", out)
    expected = read_json(out / "acdc.json")
    r = circuitry.acdc(model, task, threshold=0.001, edges=edges)
    assert r.edges == expected["edges"]
    c = r.circuits[0]
    assert (c.n_edges, c.distance, c.metric, c.runs) == tuple(expected["circuits"][0][k] for k in ("n_edges", "distance", "metric", "runs"))
    assert c.circuit.to_json() == (out / expected["circuits"][0]["file"]).read_text()
    kept = {e for e, s in r.edges.items() if s > 0}
    assert kept <= set(edges) and 0 < len(kept) < len(edges)


@pytest.mark.parametrize("options", [{"edges": 12, "restarts": 2}, {"l0": 0.01, "ablation": "zero", "seed": 4}])
def test_learn_mask_equals_the_cli(tmp_path, model, task, options):
    out = tmp_path / "mask.json"
    flags = [x for k, v in options.items() for x in ("--" + k, str(v))]
    run_cli("learn-mask", "--model", MODEL, "--task", TASK, "--steps", "5", "--lr", "0.5", *flags, "--out", out)
    r = circuitry.learn_mask(model, task, steps=5, lr=0.5, **options)
    assert r.circuit.to_json() == out.read_text()
    expected = read_json(tmp_path / "mask.log.json")
    assert {k: v for k, v in r.log.items() if k != "seconds"} == {k: v for k, v in expected.items() if k != "seconds"}
    assert len(r.log["restarts"]) == options.get("restarts", 1)
    assert r.log["seed"] == options.get("seed", 1) + [x["objective"] for x in r.log["restarts"]].index(
        min(x["objective"] for x in r.log["restarts"]))


def test_learn_mask_refuses_bad_options(model, task):
    with pytest.raises(circuitry.Error, match="give either"):
        circuitry.learn_mask(model, task, edges=3, l0=0.1)
    with pytest.raises(circuitry.Error, match="restarts must be a positive integer"):
        circuitry.learn_mask(model, task, edges=3, restarts=0)
    with pytest.raises(circuitry.Error, match="unknown ablation"):
        circuitry.learn_mask(model, task, edges=3, ablation="noise")


def test_path_patching_equals_the_cli(tmp_path, model, task):
    out = tmp_path / "pp.json"
    run_cli("path-patch", "--model", MODEL, "--task", TASK, "--senders", "a0.h1,input", "--receivers", "logits", "--out", out)
    r = circuitry.path_patch(model, task, senders=["a0.h1", "input"], receivers=["logits"])
    assert r.__dict__ == read_json(out)
    assert r.effect != 0


def test_path_sets_equal_the_cli(tmp_path, model, task):
    paths = [["a0.h1->a1.h0<k>", "a1.h0->logits"], ["input->logits"]]
    (tmp_path / "paths.json").write_text(json.dumps({"paths": paths}))
    out = tmp_path / "ps.json"
    run_cli("path-patch", "--model", MODEL, "--task", TASK, "--paths", tmp_path / "paths.json", "--out", out)
    assert circuitry.path_set(model, task, paths).__dict__ == read_json(out)


def test_roc_equals_the_cli(tmp_path, eap_scores):
    scores_file, scores = eap_scores
    (tmp_path / "truth.json").write_text(json.dumps({"edges": TRUTH}))
    out = tmp_path / "roc.json"
    run_cli("roc", "--scores", scores_file, "--ground-truth", tmp_path / "truth.json", "--out", out)
    assert circuitry.roc(scores, str(tmp_path / "truth.json")).__dict__ == read_json(out)
    assert circuitry.roc(scores, TRUTH).__dict__ == read_json(out)  # the same ground truth as a list of names


def test_compare_equals_the_cli(tmp_path, model, task):
    (tmp_path / "truth.json").write_text(json.dumps({"edges": TRUTH}))
    out = tmp_path / "cmp"
    run_cli("compare", "--model", MODEL, "--task", TASK, "--ground-truth", tmp_path / "truth.json", "--thresholds", "0.01,0.1",
            "--mask-edges", "6", "--mask-steps", "50", "--out", out)
    expected = read_json(out / "compare.json")["methods"]
    results = circuitry.compare(model, task, str(tmp_path / "truth.json"), thresholds=[0.01, 0.1], mask_edges=6, mask_steps=50)
    assert [r.method for r in results] == list(expected)
    assert "learn-mask" in expected
    for r in results:
        theirs = expected[r.method]
        mine = {k: v for k, v in r.__dict__.items() if k in theirs and k != "seconds"}
        assert mine == {k: v for k, v in theirs.items() if k != "seconds"}, r.method


def test_shipped_ground_truth_by_name(model):
    big = circuitry.Graph(12, 12)
    assert int(circuitry.ground_truth(big, "ioi").sum()) > 0
    with pytest.raises(circuitry.Error, match="12 layers x 12 heads|12 layers"):
        circuitry.ground_truth(model.graph, "ioi")

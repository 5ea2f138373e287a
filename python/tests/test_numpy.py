"""Activations and gradients at hook points as NumPy arrays, and NumPy arrays in and out."""
import numpy as np
import pytest

import circuitry
from conftest import FIXTURES, read_json, run_cli

MODEL = FIXTURES / "gpt2-tiny"
TASK = MODEL / "task.jsonl"


def test_logits_equal_the_cli_forward(tmp_path):
    out = tmp_path / "forward.json"
    run_cli("forward", "--model", MODEL, "--task", TASK, "--format", "npy", "--out", out)
    expected = np.load(tmp_path / "forward.logits.npy")
    model = circuitry.load_model(MODEL)
    clean = [e["clean"] for e in circuitry.load_task(TASK).examples]
    logits, cache = model.run_with_cache(clean)
    assert logits.dtype == np.float32 and logits.shape == expected.shape
    # A recording run computes every position of the last layer (the CLI's only the readout rows): the same
    # numbers up to float rounding.
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    assert cache["blocks.0.attn.hook_pattern"].shape == (5, 2, 8, 8)  # [batch, head, query, key]
    assert cache["blocks.1.hook_resid_post"].shape == (5, 8, 16)


def test_float64_model_and_names():
    model = circuitry.load_model(MODEL, dtype="float64")
    logits, cache = model.run_with_cache(np.array([[1, 2, 3, 4]]), names=["hook_embed", "blocks.1.mlp.hook_post"])
    assert logits.dtype == np.float64 and logits.shape == (1, 41)
    assert sorted(cache) == ["blocks.1.mlp.hook_post", "hook_embed"]
    assert cache["blocks.1.mlp.hook_post"].shape == (1, 4, 64)
    with pytest.raises(circuitry.Error, match="no hook point named 'blocks.9.hook_resid_pre'"):
        model.run_with_cache([[1, 2]], names=["blocks.9.hook_resid_pre"])


def test_gradients_give_the_eap_score_of_an_edge():
    """EAP's score of input->logits is sum (e(x') - e(x)) . dM/d(final residual): from the arrays, in float64."""
    model = circuitry.load_model(MODEL, dtype="float64")
    task = circuitry.load_task(TASK)
    acts, grads = model.gradients(task, metric="logit_diff")
    assert set(grads) <= set(acts) and grads["blocks.1.hook_resid_post"].shape == acts["blocks.1.hook_resid_post"].shape
    corrupted = [e["corrupted"] for e in task.examples]
    _, corrupted_acts = model.run_with_cache(corrupted, names=["hook_embed", "hook_pos_embed"])
    delta = (corrupted_acts["hook_embed"] + corrupted_acts["hook_pos_embed"]) - (acts["hook_embed"] + acts["hook_pos_embed"])
    from_arrays = float(np.sum(delta * grads["blocks.1.hook_resid_post"]))
    eap = circuitry.attribute(model, task, method="eap").edges["input->logits"]
    assert from_arrays == pytest.approx(eap, rel=1e-10, abs=1e-12)
    assert abs(eap) > 1e-6


def test_arrays_are_owned_and_writable_and_speak_dlpack():
    model = circuitry.load_model(MODEL)
    result = circuitry.attribute(model, circuitry.load_task(TASK), method="eap")
    scores = result.scores
    assert scores.flags.owndata is False and scores.base is not None  # a view of the C++ vector, not a copy
    del result
    assert np.isfinite(scores).all()
    assert np.from_dlpack(scores).shape == (model.graph.n_edges,)


def test_scores_from_numpy_drive_pruning():
    model = circuitry.load_model(MODEL)
    scores = circuitry.attribute(model, circuitry.load_task(TASK), method="eap")
    flipped = circuitry.Attribution(**{**scores.__dict__, "scores": -scores.scores.astype(np.float32)})
    assert circuitry.prune(flipped, top_n=5).edges == circuitry.prune(scores, top_n=5).edges  # ranked by |score|

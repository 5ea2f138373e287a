"""Shared by the tests: the repository's fixture models and the `circuitry` command line, whose outputs the
Python package must reproduce exactly (the CLI binary: $CIRCUITRY_CLI, else build/release/bin/circuitry)."""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"


def cli_path() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("CIRCUITRY_CLI", REPO / "build" / "release" / "bin" / "circuitry"))
    if not path.is_file():
        pytest.fail(f"the circuitry command line is not built at {path}: build it (cmake --preset release && "
                    f"cmake --build build/release --target circuitry_cli) or set CIRCUITRY_CLI")
    return path


def run_cli(*args, ok: bool = True) -> subprocess.CompletedProcess:
    """Runs `circuitry ARGS`; with ok, fails the test when it exits non-zero."""
    r = subprocess.run([str(cli_path()), *map(str, args)], capture_output=True, text=True)
    if ok and r.returncode != 0:
        pytest.fail(f"circuitry {' '.join(map(str, args))} failed: {r.stderr}")
    return r


def cli_error(*args) -> str:
    """The message of a failing command: its stderr line after `circuitry: error: `."""
    r = run_cli(*args, ok=False)
    assert r.returncode == 1, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith("circuitry: error: "), line
    return line[len("circuitry: error: "):]


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_random_gpt2(directory, n_layer=2, n_head=2, n_embd=16, vocab=50257, n_positions=32, seed=0):
    """A Hugging Face GPT-2 directory (config.json, model.safetensors) with random weights."""
    rng = np.random.default_rng(seed)
    D, F = n_embd, 4 * n_embd
    shapes = {"wte.weight": (vocab, D), "wpe.weight": (n_positions, D), "ln_f.weight": (D,), "ln_f.bias": (D,)}
    for l in range(n_layer):
        h = f"h.{l}."
        shapes.update({h + "ln_1.weight": (D,), h + "ln_1.bias": (D,), h + "attn.c_attn.weight": (D, 3 * D),
                       h + "attn.c_attn.bias": (3 * D,), h + "attn.c_proj.weight": (D, D), h + "attn.c_proj.bias": (D,),
                       h + "ln_2.weight": (D,), h + "ln_2.bias": (D,), h + "mlp.c_fc.weight": (D, F),
                       h + "mlp.c_fc.bias": (F,), h + "mlp.c_proj.weight": (F, D), h + "mlp.c_proj.bias": (D,)})
    header, blobs, offset = {}, [], 0
    for name in sorted(shapes):
        gain = name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight"))
        values = (1.0 + 0.1 * rng.standard_normal(shapes[name]) if gain else 0.2 * rng.standard_normal(shapes[name]))
        blob = values.astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(shapes[name]), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "model.safetensors", "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(blobs))
    config = {"model_type": "gpt2", "n_layer": n_layer, "n_head": n_head, "n_embd": D, "n_positions": n_positions,
              "vocab_size": vocab, "n_inner": None, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
    (directory / "config.json").write_text(json.dumps(config))
    return directory

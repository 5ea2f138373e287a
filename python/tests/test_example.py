"""examples/python/ioi.py runs end to end on a model file with GPT-2's vocabulary (a small random one here)."""
import json
import subprocess
import sys

import numpy as np

from conftest import REPO


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


def test_ioi_example_runs(tmp_path):
    model = write_random_gpt2(tmp_path / "gpt2-random")
    r = subprocess.run([sys.executable, str(REPO / "examples" / "python" / "ioi.py"), str(model), "--n", "8", "--top-n", "20",
                        "--plot", str(tmp_path / "ioi.png")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "eap-ig: 46 edges scored" in r.stdout  # 2 layers x 2 heads with MLPs, as gpt2-tiny
    assert "faithfulness" in r.stdout and "CPR" in r.stdout
    try:
        import matplotlib  # noqa: F401
        assert (tmp_path / "ioi.png").stat().st_size > 0
    except ImportError:
        assert "matplotlib is not installed" in r.stdout

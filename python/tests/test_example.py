"""examples/python/ioi.py runs end to end on a model file with GPT-2's vocabulary (a small random one here)."""
import subprocess
import sys

from conftest import REPO, write_random_gpt2


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

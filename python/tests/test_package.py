"""The package's version is CMake's project version; its type stubs are installed beside it."""
import pathlib
import re

import pytest

import circuitry
from conftest import REPO, run_cli


def test_version_is_the_cmake_project_version():
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert circuitry.__version__ == re.search(r"project\(circuitry VERSION ([0-9.]+)", cmake).group(1)
    from importlib.metadata import version
    assert version("circuitry") == circuitry.__version__


def test_type_stubs_are_installed():
    package = pathlib.Path(circuitry.__file__).parent
    stub = (package / "_circuitry.pyi").read_text()
    for name in ["def attribute(", "def load_model(", "class Graph", "class Task", "def generate_task("]:
        assert name in stub, name
    assert (package / "py.typed").exists()


def test_choices_are_the_registries_the_cli_help_lists():
    methods = circuitry.choices("methods")
    assert [m["name"] for m in methods] == ["eap", "eap-ig", "clean-corrupted", "gim", "atp-star", "exact", "acdc", "learn-mask"]
    eap_ig = next(m for m in methods if m["name"] == "eap-ig")
    assert {"name": "steps", "default": "5", "help": "integration steps"} in eap_ig["options"]
    metrics = [m["name"] for m in circuitry.choices("metrics")]
    assert metrics == ["logit_diff", "prob_diff", "logit_diff_max", "kl", "loss", "l2"]
    # The command line's help lists the same names, from the same registry.
    help_text = run_cli("attribute", "--help").stdout
    assert ", ".join(metrics[:-1]) + " or " + metrics[-1] in help_text
    assert [t["name"] for t in circuitry.choices("tasks")] == ["ioi", "greater-than", "docstring", "induction"]
    assert "ioi" in [g["name"] for g in circuitry.choices("ground_truths")]
    with pytest.raises(circuitry.Error, match="unknown kind of choice 'colours'"):
        circuitry.choices("colours")

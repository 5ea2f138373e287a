"""The package's version is CMake's project version; its type stubs are installed beside it."""
import pathlib
import re

import circuitry
from conftest import REPO


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

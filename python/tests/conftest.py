"""Shared by the tests: the repository's fixture models and the `circuitry` command line, whose outputs the
Python package must reproduce exactly (the CLI binary: $CIRCUITRY_CLI, else build/release/bin/circuitry)."""
import json
import os
import pathlib
import subprocess

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

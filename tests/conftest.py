"""Shared test fixtures and options.

* ``--run-slow`` runs the full grids (CI runs a representative subset).
* :func:`require` skips when a tool/package is missing on a laptop, but FAILS
  when the environment variable CI is set: CI must run every test.
"""

from __future__ import annotations

import os
import shutil

import pytest


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run the full (slow) grids")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="full grid: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


def require(condition: bool, what: str) -> None:
    """Skip (laptop) or fail (CI) when a test's external requirement is missing."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI but missing")
    pytest.skip(f"{what} not available")


def require_module(name: str):
    try:
        return __import__(name)
    except ImportError:
        require(False, f"Python package '{name}'")


def require_tool(name: str) -> str:
    path = shutil.which(name)
    require(path is not None, f"tool '{name}'")
    return path  # type: ignore[return-value]


@pytest.fixture(scope="session", autouse=True)
def _shared_build_cache(tmp_path_factory):
    """One compile cache for the whole session (shared by xdist workers through the same root)."""
    if "SEPGEN_CACHE" not in os.environ:
        root = tmp_path_factory.getbasetemp().parent / "sepgen-cache"
        root.mkdir(exist_ok=True)
        os.environ["SEPGEN_CACHE"] = str(root)
    yield

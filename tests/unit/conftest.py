"""Unit tests: no cluster, no Docker; kubectl is replaced with pytest-mock where a test needs it."""
import pytest
from sanic import Sanic

import config

Sanic.test_mode = True  # lets every test build a fresh app under the same name


@pytest.fixture
def settings(tmp_path):
    """The documented defaults: an empty environment and no service.env."""
    return config.load(environ={}, env_file=tmp_path / "service.env")

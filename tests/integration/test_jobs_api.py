"""Following runs through /jobs on the real local cluster: queue positions, progress, logs,
accuracy, cancel, and results that survive a restart of svc.py. Pods there run no container;
kwok serves them a log recorded from a real classify.py run."""
import time

import httpx
import pytest

from tests.integration.conftest import SELECTOR, wait_for

RECORDED_ACCURACY = 98.31  # what the recorded log reports


def submit(url, tier="free", dataset="mnist"):
    response = httpx.post(f"{url}/img-classification/{tier}", json={"dataset": dataset}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["job"]


def listed(url, **params):
    response = httpx.get(f"{url}/jobs", params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["jobs"]


def free_queue(url):
    """(names Running, {name: position} of those Queued) among the free runs."""
    runs = listed(url, tier="free")
    return ({r["name"] for r in runs if r["state"] == "Running"},
            {r["name"]: r["queue_position"] for r in runs if r["state"] == "Queued"})


def test_four_free_runs_two_run_two_queue_and_all_end_with_an_accuracy(service, no_jobs):
    # The first two start two seconds apart, so they also free their slots one at a time.
    names = [submit(service)]
    time.sleep(2)
    names += [submit(service) for _ in range(3)]
    running, queued = wait_for(lambda: (lambda q: q if len(q[0]) == 2 and len(q[1]) == 2 else None)(
        free_queue(service)), 30, "two free runs Running and two Queued")
    # The two submitted first run; the others wait in submission order.
    assert running == set(names[:2])
    assert queued == {names[2]: 1, names[3]: 2}
    # As runs finish, the one waiting behind moves up to position 1.
    wait_for(lambda: free_queue(service)[1] == {names[3]: 1}, 60, "the last run to move up to position 1")
    final = wait_for(lambda: (lambda runs: runs if all(r["state"] == "Succeeded" for r in runs) else None)(
        listed(service, tier="free")), 120, "every free run to succeed")
    assert [r["name"] for r in final] == names[::-1]  # newest first
    assert all(r["accuracy"] == RECORDED_ACCURACY and r["started"] and r["finished"] for r in final)
    detail = httpx.get(f"{service}/jobs/{names[0]}", timeout=30).json()
    assert detail["pod"].startswith(names[0]) and detail["node"].endswith(".ec2.internal")
    assert detail["progress"] == {"epoch": 5, "epochs": 5, "step": 600, "steps": 600, "loss": 0.0269}


def test_cancelling_a_queued_run_moves_the_one_behind_up(service, kubectl, no_jobs):
    names = [submit(service) for _ in range(4)]
    wait_for(lambda: free_queue(service)[1] == {names[2]: 1, names[3]: 2}, 30, "two runs queued")
    response = httpx.delete(f"{service}/jobs/{names[2]}", timeout=60)
    assert response.status_code == 200
    assert response.json() == {"cancelled": names[2], "namespace": "free-service"}
    assert names[2] not in {r["name"] for r in listed(service)}
    assert kubectl.json("pods", "-n", "free-service", "-l", f"job-name={names[2]}")["items"] == []
    assert free_queue(service)[1] in ({names[3]: 1}, {})


def test_following_a_run_streams_its_log_until_it_ends(service, no_jobs):
    name = submit(service, "premium", "kmnist")
    with httpx.stream("GET", f"{service}/jobs/{name}/logs", params={"follow": "1"}, timeout=120) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        text = "".join(response.iter_text())
    assert text.startswith("dataset: mnist\n")
    assert "Accuracy of the network on the 10000 test images: 98.31 %" in text
    assert httpx.get(f"{service}/jobs/{name}", timeout=30).json()["state"] == "Succeeded"
    plain = httpx.get(f"{service}/jobs/{name}/logs", timeout=30)
    assert plain.status_code == 200 and plain.text == text


def test_runs_and_results_survive_a_restart_of_the_service(service_process, no_jobs):
    url = service_process.url
    names = [submit(url) for _ in range(3)]
    wait_for(lambda: {r["state"] for r in listed(url)} >= {"Running", "Queued"}, 30, "runs under way")
    before = {r["name"]: (r["tier"], r["dataset"], r["created"]) for r in listed(url)}
    service_process.stop()
    service_process.start()
    assert {r["name"]: (r["tier"], r["dataset"], r["created"]) for r in listed(url)} == before
    final = wait_for(lambda: (lambda runs: runs if all(r["state"] == "Succeeded" for r in runs) else None)(
        listed(url)), 120, "every run to succeed")
    assert {r["name"] for r in final} == set(names)
    service_process.stop()
    service_process.start()
    assert all(r["accuracy"] == RECORDED_ACCURACY for r in listed(url))


@pytest.mark.parametrize("method", ["get", "delete"])
def test_bad_unknown_and_foreign_names_get_errors_and_change_nothing(service, kubectl, no_jobs, method):
    kubectl.apply({"apiVersion": "batch/v1", "kind": "Job",
                   "metadata": {"name": "foreign-job", "namespace": "default"},
                   "spec": {"suspend": True, "template": {"spec": {
                       "restartPolicy": "Never", "containers": [{"name": "c", "image": "other:1"}]}}}})
    try:
        for path, status in (("/jobs/Bad_Name", 400), ("/jobs/free-mnist-00000000", 404),
                             ("/jobs/foreign-job", 404), ("/jobs/foreign-job/logs", 404)):
            if method == "delete" and path.endswith("/logs"):
                continue
            response = httpx.request(method, f"{service}{path}", timeout=30)
            assert response.status_code == status, (path, response.text)
            assert set(response.json()) == {"error"}
        assert kubectl.json("jobs", "-n", "default", "foreign-job")["metadata"]["name"] == "foreign-job"
        assert httpx.get(f"{service}/jobs", params={"tier": "gold"}, timeout=30).status_code == 400
    finally:
        kubectl("delete", "job", "foreign-job", "-n", "default", "--wait=true")

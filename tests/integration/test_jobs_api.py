"""Following runs through /jobs on the real local cluster: queue positions, progress, logs,
accuracy, cancel, and results that survive a restart of svc.py. Pods there run no container;
kwok serves them a log recorded from a real classify.py run."""
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


def test_free_runs_queue_in_order_move_up_and_all_end_with_an_accuracy(service, no_jobs):
    names = [submit(service) for _ in range(5)]
    running, queued = wait_for(lambda: (lambda q: q if len(q[0]) == 2 and len(q[1]) == 3 else None)(
        free_queue(service)), 30, "two free runs Running and three Queued")
    # Those waiting are numbered 1, 2, 3 in the order they were submitted.
    waiting = [name for name in names if name not in running]
    assert queued == {name: position for position, name in enumerate(waiting, start=1)}
    # As runs finish, those still waiting move up: numbered from 1, in submission order.
    def moved_up():
        queued = free_queue(service)[1]
        in_order = [name for name in names if name in queued]
        return 0 < len(queued) < 3 and queued == {name: p for p, name in enumerate(in_order, start=1)}

    wait_for(moved_up, 60, "the runs still waiting to move up")
    final = wait_for(lambda: (lambda runs: runs if all(r["state"] == "Succeeded" for r in runs) else None)(
        listed(service, tier="free")), 120, "every free run to succeed")
    assert [r["name"] for r in final] == names[::-1]  # newest first
    assert all(r["accuracy"] == RECORDED_ACCURACY and r["started"] and r["finished"] for r in final)
    detail = httpx.get(f"{service}/jobs/{names[0]}", timeout=30).json()
    assert detail["pod"].startswith(names[0]) and detail["node"].endswith(".ec2.internal")
    assert detail["progress"] == {"epoch": 5, "epochs": 5, "step": 600, "steps": 600, "loss": 0.0269}


def test_cancelling_a_queued_run_moves_the_one_behind_up(service, kubectl, no_jobs):
    for _ in range(4):
        submit(service)
    _, queued = wait_for(lambda: (lambda q: q if len(q[0]) == 2 and len(q[1]) == 2 else None)(
        free_queue(service)), 30, "two free runs Running and two Queued")
    first, behind = sorted(queued, key=queued.get)
    response = httpx.delete(f"{service}/jobs/{first}", timeout=60)
    assert response.status_code == 200
    assert response.json() == {"cancelled": first, "namespace": "free-service"}
    assert first not in {r["name"] for r in listed(service)}
    assert kubectl.json("pods", "-n", "free-service", "-l", f"job-name={first}")["items"] == []
    running, queued = free_queue(service)
    # The run behind is now first in line (or already running, if a slot freed meanwhile).
    assert queued == {behind: 1} or (queued == {} and behind in running)


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

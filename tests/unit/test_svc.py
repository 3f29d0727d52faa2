import asyncio
import json
from pathlib import Path

import pytest

import svc
from kubectl_wrap import Kubectl, KubectlError

DATA = Path(__file__).resolve().parent / "data"
CONTENT_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded", None]


@pytest.fixture
def app(settings):
    return svc.create_app(settings)


@pytest.fixture
def apply(mocker):
    """Kubectl.apply, answering as the API server would: with the object it stored."""
    return mocker.patch.object(Kubectl, "apply", autospec=True, side_effect=lambda self, job: job)


def call(app, method, path, body=None, content_type=None):
    """One request through Sanic's ASGI test client (no socket, so no port to collide on)."""
    headers = {"content-type": content_type} if content_type else {}
    send = getattr(app.asgi_client, method)
    _, response = asyncio.run(send(path, content=body, headers=headers) if body is not None
                              else send(path, headers=headers))
    return response


def post(app, path, body, content_type="application/json"):
    return call(app, "post", path, body, content_type)


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
@pytest.mark.parametrize("tier, dataset, namespace, model", [
    ("free", "mnist", "free-service", "ff"), ("premium", "kmnist", "default", "cnv")])
def test_post_creates_a_job_whatever_the_content_type(app, apply, content_type, tier, dataset,
                                                       namespace, model):
    response = post(app, f"/img-classification/{tier}", json.dumps({"dataset": dataset}), content_type)
    assert response.status == 200, response.text
    assert apply.call_count == 1
    job = apply.call_args.args[1]
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env == {"DATASET": dataset, "TYPE": model}
    assert response.json == {"job": job["metadata"]["name"], "namespace": namespace, "tier": tier,
                             "dataset": dataset, "model": model}


@pytest.mark.parametrize("body, status, says", [
    (b"", 400, "must be JSON"),
    (b"nope", 400, "must be JSON"),
    (b"\xff\xfe", 400, "must be JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'"mnist"', 400, "JSON object"),
    (b"{}", 400, "dataset is missing: use mnist or kmnist"),
    (b'{"dataset": 5}', 400, "dataset must be mnist or kmnist, not 5"),
    (b'{"dataset": null}', 400, "not null"),
    (b'{"dataset": "cifar10"}', 400, 'dataset must be mnist or kmnist, not "cifar10"'),
    (b'{"dataset": "mnist", "epochs": 9}', 400, "unknown field(s): epochs"),
    (json.dumps({"dataset": "mnist", "pad": "x" * 5000}).encode(), 413, "exceeds the size limit"),
])
def test_bad_input_gets_a_clear_error_and_creates_nothing(app, apply, body, status, says):
    for tier in ("free", "premium"):
        response = post(app, f"/img-classification/{tier}", body)
        assert response.status == status
        assert says in response.json["error"]
    apply.assert_not_called()


def test_wrong_method_and_unknown_path_answer_json(app, apply):
    response = call(app, "get", "/img-classification/free")
    assert response.status == 405 and "GET not allowed" in response.json["error"]
    response = call(app, "put", "/config")
    assert response.status == 405 and "error" in response.json
    response = post(app, "/img-classification/gold", b'{"dataset": "mnist"}')
    assert response.status == 404 and "error" in response.json
    apply.assert_not_called()


def test_cluster_failure_is_503_with_kubectls_reason(app, mocker):
    refused = KubectlError("The connection to the server 127.0.0.1:16443 was refused")
    mocker.patch.object(Kubectl, "apply", side_effect=refused)
    mocker.patch.object(Kubectl, "pods", side_effect=refused)
    response = post(app, "/img-classification/free", b'{"dataset": "mnist"}')
    assert response.status == 503
    assert response.json == {"error": f"cluster unavailable: {refused}"}
    response = call(app, "get", "/config")
    assert response.status == 503 and "was refused" in response.json["error"]


def test_unexpected_failure_is_500_without_a_trace(app, mocker):
    mocker.patch.object(Kubectl, "apply", side_effect=ZeroDivisionError("boom"))
    response = post(app, "/img-classification/free", b'{"dataset": "mnist"}')
    assert response.status == 500
    assert "boom" not in response.text and "Traceback" not in response.text


def test_config_projects_five_fields_from_a_real_pod_list(app, mocker):
    items = json.loads((DATA / "pods.json").read_text())["items"]
    mocker.patch.object(Kubectl, "pods", return_value=items)
    response = call(app, "get", "/config")
    assert response.status == 200
    pods = response.json["pods"]
    assert len(pods) == len(items)
    assert all(set(pod) == {"node", "ip", "namespace", "name", "status"} for pod in pods)
    by_name = {pod["name"]: pod for pod in pods}
    assert by_name["premium-kmnist-1a18de19-hbwwd"] == {
        "node": "ip-192-168-45-67.ec2.internal", "ip": "192.168.45.2", "namespace": "default",
        "name": "premium-kmnist-1a18de19-hbwwd", "status": "Running"}
    # Not yet scheduled: the cluster has no node or IP for it, and /config says null.
    assert by_name["premium-kmnist-0a8d5851-jjt8m"] == {
        "node": None, "ip": None, "namespace": "default",
        "name": "premium-kmnist-0a8d5851-jjt8m", "status": "Pending"}
    assert by_name["free-mnist-6946d832-2hndw"]["status"] == "Succeeded"


def test_health_and_readiness(app, mocker):
    response = call(app, "get", "/healthz")
    assert response.status == 200
    mocker.patch.object(Kubectl, "readyz", return_value=None)
    response = call(app, "get", "/readyz")
    assert response.status == 200
    mocker.patch.object(Kubectl, "readyz", side_effect=KubectlError("connection refused"))
    response = call(app, "get", "/readyz")
    assert response.status == 503 and "connection refused" in response.json["error"]


def test_jobs_list_derives_states_and_keeps_a_new_accuracy_on_the_job(app, mocker):
    from tests.unit.test_runs import job, pod
    done = job("free-done", conditions=["Complete"], submitted="2026-12-04T09:00:00.000+00:00")
    jobs = [done, job("free-run", submitted="2026-12-04T09:30:00.000+00:00"),
            job("free-wait", submitted="2026-12-04T10:00:00.000+00:00")]
    mocker.patch.object(Kubectl, "jobs", return_value=jobs)
    mocker.patch.object(Kubectl, "service_pods", return_value=[pod("free-done", "Succeeded"),
                                                              pod("free-run", "Running")])
    mocker.patch.object(Kubectl, "logs", return_value="Accuracy of the network on the 10000 test images: 97.50 %\n")
    annotate = mocker.patch.object(Kubectl, "annotate_jobs")
    response = call(app, "get", "/jobs")
    assert response.status == 200
    assert [(r["name"], r["state"], r["queue_position"], r["accuracy"]) for r in response.json["jobs"]] == [
        ("free-wait", "Queued", 1, None), ("free-run", "Running", None, None),
        ("free-done", "Succeeded", None, 97.5)]
    annotate.assert_called_once_with("free-service", ["free-done"], "img-classification/accuracy", "97.5")


@pytest.mark.parametrize("method, path, status", [
    ("get", "/jobs?tier=gold", 400), ("get", "/jobs/Bad_Name", 400), ("get", "/jobs/free-mnist-0000", 404),
    ("delete", "/jobs/free-mnist-0000", 404), ("get", "/jobs/free-mnist-0000/logs", 404),
    ("delete", "/jobs/-bad-", 400)])
def test_jobs_errors_change_nothing(app, mocker, method, path, status):
    mocker.patch.object(Kubectl, "jobs", return_value=[])
    mocker.patch.object(Kubectl, "service_pods", return_value=[])
    delete = mocker.patch.object(Kubectl, "delete_job")
    response = call(app, method, path)
    assert response.status == status and set(response.json) == {"error"}
    delete.assert_not_called()


def test_callers_during_a_call_in_flight_share_it_and_later_ones_start_anew():
    calls = []

    async def listing():
        calls.append(len(calls))
        await asyncio.sleep(0.05)
        return f"listing {len(calls)}"

    async def scenario():
        shared = svc.Coalesced(listing)
        together = await asyncio.gather(*(shared() for _ in range(10)))
        later = await shared()
        return together, later

    together, later = asyncio.run(scenario())
    assert together == ["listing 1"] * 10 and later == "listing 2" and len(calls) == 2


def test_a_failed_call_fails_every_caller_that_shared_it():
    async def refused():
        await asyncio.sleep(0.01)
        raise svc.ClusterUnavailable("cluster unavailable: refused")

    async def scenario():
        shared = svc.Coalesced(refused)
        return await asyncio.gather(shared(), shared(), return_exceptions=True)

    assert [str(e) for e in asyncio.run(scenario())] == ["cluster unavailable: refused"] * 2

import json

import pytest
import sh

import kubectl_wrap
from kubectl_wrap import Kubectl, KubectlError


def test_reason_is_kubectls_final_message_without_its_log_lines():
    stderr = ('E1204 15:45:53.660180   14708 memcache.go:265] "Unhandled Error" err="couldn\'t get"\n'
              "E1204 15:45:53.661000   14708 memcache.go:265] again\n"
              "The connection to the server localhost:8080 was refused - did you specify the right host or port?\n")
    assert kubectl_wrap.reason(stderr) == ("The connection to the server localhost:8080 was refused"
                                           " - did you specify the right host or port?")
    assert kubectl_wrap.reason('error: namespaces "free-service" not found\n') == \
        'namespaces "free-service" not found'
    assert kubectl_wrap.reason("") == "kubectl failed without a message"


def test_missing_kubectl_is_reported(mocker):
    mocker.patch.object(sh, "Command", side_effect=sh.CommandNotFound("kubectl"))
    with pytest.raises(KubectlError, match="kubectl is not installed or not on PATH"):
        Kubectl(5).pods()


def test_timeout_is_reported_with_its_limit(mocker):
    command = mocker.Mock(side_effect=sh.TimeoutException(-9, "kubectl get pods"))
    mocker.patch.object(sh, "Command", return_value=command)
    with pytest.raises(KubectlError, match="kubectl get timed out after 2.5s"):
        Kubectl(2.5).pods()


def test_arguments_go_as_a_list_with_a_timeout_and_the_manifest_on_stdin(mocker):
    command = mocker.Mock(return_value=json.dumps({"metadata": {"name": "j"}}))
    mocker.patch.object(sh, "Command", return_value=command)
    Kubectl(7).apply({"kind": "Job"})
    args, kwargs = command.call_args
    assert args == ("--request-timeout=7s", "apply", "-f", "-", "-o", "json")
    assert kwargs == {"_in": '{"kind": "Job"}', "_timeout": 7}


def test_real_kubectl_against_no_cluster_gives_a_readable_error(tmp_path, monkeypatch):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    with pytest.raises(KubectlError, match="127.0.0.1:9 was refused"):
        Kubectl(5).pods()


def test_pod_summary_of_a_pod_without_status():
    pod = {"metadata": {"namespace": "default", "name": "p"}, "spec": {}}
    assert kubectl_wrap.pod_summary(pod) == {"node": None, "ip": None, "namespace": "default",
                                             "name": "p", "status": None}

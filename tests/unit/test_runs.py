"""How runs are derived from Jobs, pods and logs, and when a freed slot is handed on."""
from pathlib import Path

import handoff
import runs

RECORDED_LOG = Path(__file__).resolve().parents[2] / "localcluster" / "logs" / "classify-mnist-ff.log"


def job(name, tier="free", submitted="2026-12-04T10:00:00.000+00:00", conditions=(), annotations=None):
    return {"metadata": {"name": name, "namespace": "free-service" if tier == "free" else "default",
                         "creationTimestamp": "2026-12-04T10:00:00Z",
                         "labels": {"img-classification/tier": tier, "img-classification/dataset": "mnist",
                                    "img-classification/model": "ff" if tier == "free" else "cnv"},
                         "annotations": {"img-classification/submitted-at": submitted, **(annotations or {})}},
            "status": {"conditions": [{"type": kind, "status": "True",
                                       "lastTransitionTime": "2026-12-04T10:01:00Z"} for kind in conditions]}}


def pod(job_name, phase, namespace="free-service", created="2026-12-04T10:00:01Z"):
    return {"metadata": {"name": f"{job_name}-abcde", "namespace": namespace, "creationTimestamp": created,
                         "labels": {"job-name": job_name}},
            "spec": {"nodeName": "ip-192-168-12-34.ec2.internal"},
            "status": {"phase": phase, "startTime": "2026-12-04T10:00:02Z"}}


def test_state_follows_job_conditions_then_the_pod():
    assert runs.state(job("a", conditions=["Complete"]), pod("a", "Succeeded")) == "Succeeded"
    assert runs.state(job("a", conditions=["Failed"]), None) == "Failed"
    assert runs.state(job("a"), pod("a", "Running")) == "Running"
    assert runs.state(job("a"), pod("a", "Pending")) == "Queued"
    assert runs.state(job("a"), None) == "Queued"


def test_free_runs_waiting_get_positions_in_submission_order_newest_listed_first():
    jobs = [job("free-c", submitted="2026-12-04T10:00:00.300+00:00"),
            job("free-a", submitted="2026-12-04T10:00:00.100+00:00"),
            job("free-b", submitted="2026-12-04T10:00:00.200+00:00"),
            job("free-r", submitted="2026-12-04T09:00:00.000+00:00"),
            job("premium-q", tier="premium", submitted="2026-12-04T08:00:00.000+00:00")]
    pods = [pod("free-r", "Running"), pod("premium-q", "Pending", namespace="default")]
    listed = runs.listing(jobs, pods)
    assert [r["name"] for r in listed] == ["free-c", "free-b", "free-a", "free-r", "premium-q"]
    assert {r["name"]: r["queue_position"] for r in listed} == {
        "free-a": 1, "free-b": 2, "free-c": 3, "free-r": None, "premium-q": None}
    assert [r["name"] for r in runs.listing(jobs, pods, tier="premium")] == ["premium-q"]


def test_recorded_accuracy_and_times_come_from_the_job():
    finished = job("free-a", conditions=["Complete"], annotations={runs.ACCURACY_ANNOTATION: "98.31"})
    finished["status"]["completionTime"] = "2026-12-04T10:01:00Z"
    run = runs.summary(finished, pod("free-a", "Succeeded"))
    assert (run["accuracy"], run["started"], run["finished"]) == (98.31, "2026-12-04T10:00:02Z",
                                                                 "2026-12-04T10:01:00Z")


def test_progress_and_accuracy_are_parsed_from_a_real_training_log():
    # The recorded log is in the CRI format kwok serves; strip the timestamp, stream and tag.
    log = "".join(line.split(" ", 3)[3] + "\n" for line in RECORDED_LOG.read_text().splitlines())
    assert runs.progress(log) == {"epoch": 5, "epochs": 5, "step": 600, "steps": 600, "loss": 0.0269}
    assert runs.accuracy(log) == 98.31
    assert runs.progress("dataset: mnist\n") is None and runs.accuracy("") is None


def test_a_finish_frees_a_slot_once_and_a_deleted_running_pod_frees_one_too():
    finished = set()
    assert handoff.frees_a_slot("MODIFIED", "p1", "Running", finished) is False
    assert handoff.frees_a_slot("MODIFIED", "p1", "Succeeded", finished) is True
    assert handoff.frees_a_slot("MODIFIED", "p1", "Succeeded", finished) is False
    assert handoff.frees_a_slot("DELETED", "p1", "Succeeded", finished) is False
    assert handoff.frees_a_slot("DELETED", "p2", "Running", finished) is True
    assert handoff.frees_a_slot("ADDED", "p3", "Failed", finished) is True
    assert handoff.frees_a_slot("ADDED", "p4", "Pending", finished) is False


def test_only_the_run_first_in_line_is_nudged():
    jobs = [job("free-b", submitted="2026-12-04T10:00:00.200+00:00"),
            job("free-a", submitted="2026-12-04T10:00:00.100+00:00"),
            job("free-r", submitted="2026-12-04T09:00:00.000+00:00")]
    assert handoff.next_in_queue(jobs, [pod("free-r", "Running")], "free-service") == "free-a"
    # A second slot freed before free-a's pod appears goes to the run behind it.
    assert handoff.next_in_queue(jobs, [pod("free-r", "Running")], "free-service", {"free-a"}) == "free-b"
    assert handoff.next_in_queue(jobs[2:], [pod("free-r", "Running")], "free-service") is None

"""What a user sees of a run, derived from the cluster's Job and pod (no I/O here).

A run's state, queue position, progress and accuracy come from objects kubectl returned and
from the training log, so they survive a restart of svc.py and last as long as the Job.
"""
import re

import manifest

ACCURACY_ANNOTATION = "img-classification/accuracy"
# Phases (and run states) of a run that is over.
FINISHED = ("Succeeded", "Failed")
PROGRESS = re.compile(r"^Epoch \[(\d+)/(\d+)\], Step \[(\d+)/(\d+)\], Loss: ([\d.]+)$", re.M)
ACCURACY = re.compile(r"^Accuracy of the network on the (\d+) test images: ([\d.]+) %$", re.M)


def condition(job, kind):
    """The Job's condition of this type when it is True, else None."""
    for entry in job.get("status", {}).get("conditions", []):
        if entry["type"] == kind and entry["status"] == "True":
            return entry
    return None


def state(job, pod):
    if condition(job, "Complete"):
        return "Succeeded"
    if condition(job, "Failed"):
        return "Failed"
    if pod is not None and pod.get("status", {}).get("phase") in ("Running", "Succeeded"):
        return "Running"
    # No pod yet (the quota refused it) or a pod waiting for a node: the run waits its turn.
    return "Queued"


def progress(log):
    """The latest progress line of a training log, or None."""
    lines = PROGRESS.findall(log or "")
    if not lines:
        return None
    epoch, epochs, step, steps, loss = lines[-1]
    return {"epoch": int(epoch), "epochs": int(epochs), "step": int(step), "steps": int(steps),
            "loss": float(loss)}


def accuracy(log):
    """The final test accuracy (percent) a training log reports, or None."""
    found = ACCURACY.findall(log or "")
    return float(found[-1][1]) if found else None


def newest_pod(pods):
    return max(pods, key=lambda pod: pod["metadata"]["creationTimestamp"], default=None)


def pods_by_job(pods):
    grouped = {}
    for pod in pods:
        key = (pod["metadata"]["namespace"], pod["metadata"].get("labels", {}).get("job-name"))
        grouped.setdefault(key, []).append(pod)
    return {key: newest_pod(group) for key, group in grouped.items()}


def summary(job, pod):
    """A run as /jobs lists it (queue_position is filled in by with_queue_positions)."""
    meta, labels = job["metadata"], job["metadata"].get("labels", {})
    status = job.get("status", {})
    finished = condition(job, "Complete") or condition(job, "Failed")
    recorded = meta.get("annotations", {}).get(ACCURACY_ANNOTATION)
    return {
        "name": meta["name"],
        "namespace": meta["namespace"],
        "tier": labels.get("img-classification/tier"),
        "dataset": labels.get("img-classification/dataset"),
        "model": labels.get("img-classification/model"),
        "state": state(job, pod),
        "created": meta.get("annotations", {}).get(manifest.SUBMITTED_ANNOTATION,
                                                   meta["creationTimestamp"]),
        "started": (pod or {}).get("status", {}).get("startTime"),
        "finished": status.get("completionTime") or (finished or {}).get("lastTransitionTime"),
        "queue_position": None,
        "accuracy": float(recorded) if recorded else None,
    }


def with_queue_positions(runs):
    """Numbers the free runs waiting on the quota, oldest first (1 = next to start)."""
    waiting = sorted((run for run in runs if run["tier"] == "free" and run["state"] == "Queued"),
                     key=lambda run: (run["created"], run["name"]))
    for position, run in enumerate(waiting, start=1):
        run["queue_position"] = position
    return runs


def listing(jobs, pods, tier=None):
    """The runs of these Jobs (this service's), newest first, optionally of one tier."""
    by_job = pods_by_job(pods)
    runs = [summary(job, by_job.get((job["metadata"]["namespace"], job["metadata"]["name"])))
            for job in jobs]
    with_queue_positions(runs)
    runs.sort(key=lambda run: (run["created"], run["name"]), reverse=True)
    return [run for run in runs if tier is None or run["tier"] == tier]

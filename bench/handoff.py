"""Queue hand-off benchmark: how soon a queued free run's pod is created after a free pod ends.

    python bench/handoff.py [--handoffs 20] [--run-seconds 3]

Brings the local cluster up (simulated runs of --run-seconds), then for each mode, svc.py with
its queue hand-off on (QUEUE_HANDOFF=1) and off (0): deletes this service's Jobs, submits
handoffs + 2 free runs at once through svc.py, watches the free pods, and measures for every
pod after the first two the time from the finish that freed its slot to its creation.
Prints count, p50, p95 and max per mode. Ends by deleting the Jobs it made.
"""
import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
os.environ["KUBECONFIG"] = str(REPO / ".cluster" / "kubeconfig")

import config  # noqa: E402
import kubectl_wrap  # noqa: E402
from tests.integration.conftest import Service  # noqa: E402

FINISHED = ("Succeeded", "Failed")


def watch(kubectl, namespace, created, finished, stop):
    """Records when each pod first appears and first reports a finished phase."""
    while not stop.is_set():
        for event, pod, phase in kubectl.watch_pods(namespace):
            now = time.monotonic()
            if event == "ADDED" and pod not in created:
                created[pod] = now
            if phase in FINISHED and pod not in finished:
                finished[pod] = now
            if stop.is_set():
                return


def measure(handoff, count, kubectl, namespace):
    kubectl.delete_jobs([namespace])
    service = Service(REPO / ".cluster" / "kubeconfig")
    os.environ["QUEUE_HANDOFF"] = "1" if handoff else "0"
    service.start()
    created, finished, stop = {}, {}, threading.Event()
    watcher = threading.Thread(target=watch, args=(kubectl, namespace, created, finished, stop),
                               daemon=True)
    watcher.start()
    time.sleep(1)  # the watch is listening
    try:
        for _ in range(count + 2):
            httpx.post(f"{service.url}/img-classification/free", json={"dataset": "mnist"},
                       timeout=60).raise_for_status()
        deadline = time.monotonic() + 60 * count
        while len(finished) < count + 2 and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop.set()
        service.stop()
    creations = sorted(created.values())
    finishes = sorted(finished.values())
    # The k-th pod (k >= 3) takes the slot the (k-2)-th finish freed.
    return [creations[k] - finishes[k - 2] for k in range(2, min(len(creations), len(finishes) + 2))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handoffs", type=int, default=20)
    parser.add_argument("--run-seconds", default="3")
    args = parser.parse_args()
    subprocess.run(["bash", str(REPO / "setup.sh"), "local", "up"], check=True,
                   env={**os.environ, "LOCAL_RUN_SECONDS": args.run_seconds})
    settings = config.load()
    kubectl = kubectl_wrap.Kubectl(300)  # deleting hundreds of Jobs takes a while
    namespace = settings.tiers["free"].namespace
    print(f"| queue hand-off | hand-offs | p50 s | p95 s | max s |\n|---|---|---|---|---|")
    for handoff in (True, False):
        gaps = measure(handoff, args.handoffs, kubectl, namespace)
        p95 = statistics.quantiles(gaps, n=20)[-1] if len(gaps) >= 2 else max(gaps)
        print(f"| {'on' if handoff else 'off'} | {len(gaps)} | {statistics.median(gaps):.2f} | "
              f"{p95:.2f} | {max(gaps):.2f} |", flush=True)
    kubectl.delete_jobs([namespace])


if __name__ == "__main__":
    main()

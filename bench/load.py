"""Load benchmark of svc.py against the local cluster: POST and /config at concurrency 1, 10, 50.

    python bench/load.py [--requests 100]

Brings the local cluster up, starts svc.py, and for each endpoint and concurrency sends
--requests requests from that many concurrent clients over loopback. Prints p50 and p99
latency, requests per second, and how many pods the cluster held when /config was measured.
Deletes the Jobs it created at the end.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
os.environ["KUBECONFIG"] = str(REPO / ".cluster" / "kubeconfig")

import config  # noqa: E402
import kubectl_wrap  # noqa: E402
from tests.integration.conftest import Service  # noqa: E402


def timed(client, method, url, body):
    started = time.perf_counter()
    response = client.request(method, url, content=body, timeout=120)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{method} {url} answered {response.status_code}: {response.text}")
    return elapsed


def load(method, url, body, concurrency, requests):
    with httpx.Client(limits=httpx.Limits(max_connections=concurrency)) as client, \
            ThreadPoolExecutor(concurrency) as pool:
        started = time.perf_counter()
        latencies = list(pool.map(lambda _: timed(client, method, url, body), range(requests)))
        wall = time.perf_counter() - started
    latencies.sort()
    return (statistics.median(latencies), latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            requests / wall)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    subprocess.run(["bash", str(REPO / "setup.sh"), "local", "up"], check=True)
    settings = config.load()
    kubectl = kubectl_wrap.Kubectl(300)  # deleting hundreds of Jobs takes a while
    namespaces = sorted({tier.namespace for tier in settings.tiers.values()})
    service = Service(REPO / ".cluster" / "kubeconfig")
    service.start()
    print("| endpoint | concurrency | requests | p50 ms | p99 ms | req/s | pods in cluster |")
    print("|---|---|---|---|---|---|---|")
    try:
        for concurrency in (1, 10, 50):
            for name, method, path, body in (
                    ("POST /img-classification/premium", "POST", "/img-classification/premium",
                     b'{"dataset": "mnist"}'),
                    ("GET /config", "GET", "/config", None)):
                pods = len(kubectl.pods())
                p50, p99, rate = load(method, service.url + path, body, concurrency, args.requests)
                print(f"| {name} | {concurrency} | {args.requests} | {p50 * 1000:.0f} | {p99 * 1000:.0f} | "
                      f"{rate:.1f} | {pods} |", flush=True)
    finally:
        service.stop()
        kubectl.delete_jobs(namespaces)


if __name__ == "__main__":
    main()

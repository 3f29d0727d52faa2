"""The only module that runs kubectl (through the `sh` library), and a CLI for debugging.

    python kubectl_wrap.py submit free|premium [--dataset mnist] [--dry-run]
    python kubectl_wrap.py pods          # every pod, in the /config shape
    python kubectl_wrap.py jobs          # this service's Jobs
    python kubectl_wrap.py runs [--tier free|premium]   # its runs as GET /jobs shows them
    python kubectl_wrap.py logs NAME     # a run's log
    python kubectl_wrap.py cancel NAME   # delete a run's Job and its pod
    python kubectl_wrap.py delete-jobs   # delete this service's Jobs and their pods

kubectl finds the cluster the usual way (KUBECONFIG or ~/.kube/config). Every call passes its
arguments as a list and has a timeout; a failure becomes KubectlError carrying one line a
user can read, taken from kubectl's stderr.
"""
import argparse
import json
import re
import sys

import sh

import config
import manifest
import runs


class KubectlError(Exception):
    """kubectl is missing, timed out, could not reach the cluster, or the cluster refused."""


# kubectl's own log lines ("E1204 15:45:53.660180 14708 memcache.go:265] ...") precede its message.
KLOG_LINE = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d\d")


def reason(stderr):
    """The line of kubectl's stderr that tells a user what went wrong: its final message."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    messages = [line for line in lines if not KLOG_LINE.match(line)] or lines
    return messages[-1].removeprefix("error: ") if messages else "kubectl failed without a message"


class Kubectl:
    """kubectl calls with one timeout (seconds) each."""

    def __init__(self, timeout):
        self.timeout = timeout

    @staticmethod
    def _command():
        try:
            return sh.Command("kubectl")
        except sh.CommandNotFound:
            raise KubectlError("kubectl is not installed or not on PATH") from None

    def run(self, *args, stdin=None):
        """Runs kubectl with the given arguments; returns its stdout."""
        kubectl = self._command()
        try:
            return kubectl(f"--request-timeout={self.timeout:g}s", *args, _in=stdin,
                           _timeout=self.timeout)
        except sh.TimeoutException:
            raise KubectlError(f"kubectl {args[0]} timed out after {self.timeout:g}s") from None
        except sh.ErrorReturnCode as error:
            raise KubectlError(reason(error.stderr.decode(errors="replace"))) from None

    def apply(self, obj):
        """Creates (or updates) an object with `kubectl apply -f -`; returns it as stored."""
        return json.loads(self.run("apply", "-f", "-", "-o", "json", stdin=json.dumps(obj)))

    def pods(self):
        """Every pod in every namespace, as kubectl returns them."""
        return json.loads(self.run("get", "pods", "--all-namespaces", "-o", "json"))["items"]

    def jobs(self, name=None):
        """This service's Jobs in every namespace (only the one of that name, if given)."""
        by_name = [f"--field-selector=metadata.name={name}"] if name else []
        return json.loads(self.run("get", "jobs", "--all-namespaces", "-l", manifest.SELECTOR,
                                   *by_name, "-o", "json"))["items"]

    def service_pods(self, job_name=None):
        """The pods of this service's runs (only those of one Job, if given)."""
        selector = manifest.SELECTOR + (f",job-name={job_name}" if job_name else "")
        return json.loads(self.run("get", "pods", "--all-namespaces", "-l", selector,
                                   "-o", "json"))["items"]

    def logs(self, namespace, pod):
        """The training container's whole log."""
        return self.run("logs", "-n", namespace, pod, "--tail=-1")

    def annotate_jobs(self, namespace, names, key, value):
        return self.run("annotate", "jobs", "-n", namespace, *names, f"{key}={value}", "--overwrite")

    def delete_job(self, namespace, name):
        """Deletes one Job and, in the foreground, its pod."""
        return self.run("delete", "job", name, "-n", namespace, "--cascade=foreground", "--wait=true")

    def watch_pods(self, namespace):
        """Yields (event, pod name, phase) for this service's pods in a namespace, until the
        watch ends (after five minutes, or when the cluster goes away)."""
        kubectl = self._command()
        try:
            lines = kubectl(
                "--request-timeout=5m", "get", "pods", "-n", namespace, "-l", manifest.SELECTOR, "--watch",
                "--output-watch-events", "--no-headers",
                "-o", "custom-columns=EVENT:.type,NAME:.object.metadata.name,PHASE:.object.status.phase",
                _iter=True, _bg_exc=False)
            for line in lines:
                fields = line.split()
                if len(fields) == 3:
                    yield tuple(fields)
        except sh.ErrorReturnCode as error:
            raise KubectlError(f"watching pods in {namespace} stopped: "
                               f"{reason(error.stderr.decode(errors='replace'))}") from None

    def delete_jobs(self, namespaces):
        """Deletes this service's Jobs and, in the foreground, their pods."""
        return "".join(self.run("delete", "jobs", "-n", namespace, "-l", manifest.SELECTOR,
                                "--cascade=foreground", "--wait=true")
                       for namespace in namespaces)

    def readyz(self):
        """Raises KubectlError unless the API server reports itself ready."""
        self.run("get", "--raw", "/readyz")


def pod_summary(pod):
    """The five fields /config shows for a pod; None where the cluster has no value yet."""
    return {
        "node": pod.get("spec", {}).get("nodeName"),
        "ip": pod.get("status", {}).get("podIP"),
        "namespace": pod["metadata"]["namespace"],
        "name": pod["metadata"]["name"],
        "status": pod.get("status", {}).get("phase"),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kubectl_wrap.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    submit = commands.add_parser("submit", help="start a training run of a tier")
    submit.add_argument("tier", choices=["free", "premium"])
    submit.add_argument("--dataset", choices=config.DATASETS, default="mnist")
    submit.add_argument("--dry-run", action="store_true", help="print the Job; create nothing")
    commands.add_parser("pods", help="every pod, as /config shows it")
    commands.add_parser("jobs", help="this service's Jobs")
    runs_cmd = commands.add_parser("runs", help="this service's runs, as GET /jobs shows them")
    runs_cmd.add_argument("--tier", choices=["free", "premium"])
    commands.add_parser("logs", help="a run's log").add_argument("name")
    commands.add_parser("cancel", help="delete a run's Job and its pod").add_argument("name")
    commands.add_parser("delete-jobs", help="delete this service's Jobs and their pods")
    args = parser.parse_args(argv)

    settings = config.load()
    kubectl = Kubectl(settings.kubectl_timeout)
    try:
        if args.command == "submit":
            job = manifest.job_manifest(settings.tiers[args.tier], args.dataset, settings)
            if args.dry_run:
                print(json.dumps(job, indent=2))
            else:
                created = kubectl.apply(job)
                print(f"job/{created['metadata']['name']} created in {created['metadata']['namespace']}")
        elif args.command == "pods":
            print(json.dumps({"pods": [pod_summary(p) for p in kubectl.pods()]}, indent=2))
        elif args.command == "jobs":
            for job in kubectl.jobs():
                print(f"{job['metadata']['namespace']}/{job['metadata']['name']}")
        elif args.command == "runs":
            print(json.dumps({"jobs": runs.listing(kubectl.jobs(), kubectl.service_pods(), args.tier)},
                             indent=2))
        elif args.command in ("logs", "cancel"):
            found = kubectl.jobs(args.name)
            if not found:
                print(f"error: no run named {args.name}", file=sys.stderr)
                return 1
            namespace = found[0]["metadata"]["namespace"]
            if args.command == "cancel":
                print(kubectl.delete_job(namespace, args.name), end="")
            else:
                pod = runs.newest_pod(kubectl.service_pods(args.name))
                print(kubectl.logs(namespace, pod["metadata"]["name"]) if pod else "", end="")
        else:
            tiers = settings.tiers.values()
            print(kubectl.delete_jobs(sorted({tier.namespace for tier in tiers})), end="")
    except KubectlError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

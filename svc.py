"""The image-classification training service.

    python svc.py [--host 0.0.0.0] [--port 5000]

POST /img-classification/free     {"dataset": "mnist"|"kmnist"} -> a feed-forward run in free-service
POST /img-classification/premium  {"dataset": "mnist"|"kmnist"} -> a convolutional run in default
GET  /config                      every pod of the cluster: node, ip, namespace, name, status
GET  /jobs[?tier=free|premium]    this service's runs, newest first: state, queue position, accuracy
GET  /jobs/<name>                 one run, with its pod, node, latest progress and accuracy
GET  /jobs/<name>/logs[?follow=1] the run's log as text; follow streams it until the run ends
DELETE /jobs/<name>               cancels the run (its pod goes too)
GET  /healthz, /readyz            the process lives / the cluster answers

Errors are JSON {"error": "..."}: 400 bad input, 413 body too large, 404, 405, and 503 when
the cluster cannot be reached. Settings: config.py.
"""
import argparse
import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor

from sanic import Sanic
from sanic.handlers import ErrorHandler
from sanic.exceptions import PayloadTooLarge, SanicException
from sanic.response import json as json_response
from sanic.response import text as text_response

import config
import manifest
import runs
from handoff import QueueHandoff
from kubectl_wrap import Kubectl, KubectlError, pod_summary

log = logging.getLogger("svc")
# How often a followed log is read again while its run goes on.
FOLLOW_INTERVAL_SECONDS = 1.0


class BadRequest(SanicException):
    status_code = 400


class ClusterUnavailable(SanicException):
    status_code = 503


class RunNotFound(SanicException):
    status_code = 404


class Coalesced:
    """Runs an async call once for every caller that arrives while it is in flight; a caller
    after it finished starts a new one. Its answer is at most one call old."""

    def __init__(self, call):
        self.call = call
        self.pending = None

    async def __call__(self):
        if self.pending is None:
            self.pending = asyncio.ensure_future(self.call())
            self.pending.add_done_callback(self._finished)
        return await asyncio.shield(self.pending)

    def _finished(self, _):
        self.pending = None


class JSONErrors(ErrorHandler):
    """Every error, Sanic's own (404, 405, 413) included, as {"error": "..."}; never a trace."""

    def default(self, request, exception):
        if isinstance(exception, SanicException):
            return json_response({"error": str(exception)}, status=exception.status_code)
        log.error("unexpected error on %s %s", request.method, request.path, exc_info=exception)
        return json_response({"error": "internal error; the service log has the details"},
                             status=500)


def parse_request(body):
    """The dataset a POST asks for. The body is JSON whatever its Content-Type says."""
    try:
        data = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest('body must be JSON such as {"dataset": "mnist"}') from None
    if not isinstance(data, dict):
        raise BadRequest('body must be a JSON object such as {"dataset": "mnist"}')
    unknown = sorted(set(data) - {"dataset"})
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(unknown)}; the only field is dataset")
    allowed = " or ".join(config.DATASETS)
    if "dataset" not in data:
        raise BadRequest(f"dataset is missing: use {allowed}")
    dataset = data["dataset"]
    if not isinstance(dataset, str) or dataset not in config.DATASETS:
        raise BadRequest(f"dataset must be {allowed}, not {json.dumps(dataset)}")
    return dataset


def create_app(settings=None, name="img_classification"):
    settings = settings or config.load()
    app = Sanic(name, error_handler=JSONErrors())
    app.config.REQUEST_MAX_SIZE = config.MAX_BODY_BYTES
    app.config.FALLBACK_ERROR_FORMAT = "json"
    kubectl = Kubectl(settings.kubectl_timeout)

    @app.before_server_start
    async def start_pool(app):
        # kubectl blocks for tens of milliseconds: it runs on these threads, never on the loop.
        app.ctx.pool = ThreadPoolExecutor(settings.kubectl_concurrency, thread_name_prefix="kubectl")
        # A pod listing costs kubectl a CPU-bound fraction of a second: requests that arrive
        # while one is in flight share it, so /config keeps answering under load.
        app.ctx.all_pods = Coalesced(lambda: in_thread(kubectl.pods))
        app.ctx.handoff = None
        if settings.queue_handoff:
            app.ctx.handoff = QueueHandoff(kubectl, settings.tiers["free"].namespace)
            app.ctx.handoff.start()

    @app.after_server_stop
    async def stop_pool(app):
        if app.ctx.handoff:
            app.ctx.handoff.stop()
        app.ctx.pool.shutdown(wait=False, cancel_futures=True)

    async def in_thread(call, *args):
        try:
            return await asyncio.get_running_loop().run_in_executor(app.ctx.pool, call, *args)
        except KubectlError as error:
            raise ClusterUnavailable(f"cluster unavailable: {error}") from None

    async def submit(request, tier):
        # Sanic refuses larger bodies before reading them; this covers ASGI servers too.
        if len(request.body) > config.MAX_BODY_BYTES:
            raise PayloadTooLarge(f"body exceeds the size limit of {config.MAX_BODY_BYTES} bytes")
        dataset = parse_request(request.body)
        job = manifest.job_manifest(settings.tiers[tier], dataset, settings)
        created = await in_thread(kubectl.apply, job)
        meta = created["metadata"]
        log.info("created job %s/%s", meta["namespace"], meta["name"])
        return json_response({"job": meta["name"], "namespace": meta["namespace"], "tier": tier,
                              "dataset": dataset, "model": settings.tiers[tier].model})

    @app.post("/img-classification/free")
    async def free(request):
        return await submit(request, "free")

    @app.post("/img-classification/premium")
    async def premium(request):
        return await submit(request, "premium")

    @app.get("/config")
    async def cluster_config(request):
        pods = await app.ctx.all_pods()
        return json_response({"pods": [pod_summary(pod) for pod in pods]})

    def check_name(name):
        if not manifest.JOB_NAME.match(name):
            raise BadRequest(f"{json.dumps(name)} is not a valid Job name (lowercase letters, "
                             "digits and '-', at most 63)")

    async def lookup_run(name):
        """This service's Job of that name and its newest pod, or None."""
        jobs = await in_thread(kubectl.jobs, name)
        if not jobs:
            return None
        return jobs[0], runs.newest_pod(await in_thread(kubectl.service_pods, name))

    async def find_run(name):
        """As lookup_run, but 400 for an invalid name and 404 for no such run."""
        check_name(name)
        found = await lookup_run(name)
        if found is None:
            raise RunNotFound(f"no run named {name}")
        return found

    async def run_log(job, pod):
        """The run's log so far ('' before its container starts)."""
        if pod is None or pod.get("status", {}).get("phase") not in ("Running", *runs.FINISHED):
            return ""
        return await in_thread(kubectl.logs, job["metadata"]["namespace"], pod["metadata"]["name"])

    def needs_accuracy(run):
        return run["state"] == "Succeeded" and run["accuracy"] is None

    async def record_accuracy(run, job, log):
        """Keeps a finished run's accuracy on its Job, so it outlives the log and this process."""
        if not needs_accuracy(run):
            return
        run["accuracy"] = runs.accuracy(log)
        if run["accuracy"] is not None:
            await in_thread(kubectl.annotate_jobs, job["metadata"]["namespace"], [job["metadata"]["name"]],
                            runs.ACCURACY_ANNOTATION, str(run["accuracy"]))

    @app.get("/jobs")
    async def list_runs(request):
        tier = request.args.get("tier")
        if tier is not None and tier not in settings.tiers:
            raise BadRequest(f"tier must be {' or '.join(settings.tiers)}, not {json.dumps(tier)}")
        jobs = await in_thread(kubectl.jobs)
        pods = await in_thread(kubectl.service_pods)
        listed = runs.listing(jobs, pods, tier)
        by_name = {job["metadata"]["name"]: job for job in jobs}
        by_job = runs.pods_by_job(pods)
        for run in listed:
            if needs_accuracy(run):
                job = by_name[run["name"]]
                await record_accuracy(run, job, await run_log(job, by_job.get((run["namespace"], run["name"]))))
        return json_response({"jobs": listed})

    @app.get("/jobs/<name>")
    async def one_run(request, name):
        check_name(name)
        # All runs, since a queue position depends on the other free runs.
        jobs = await in_thread(kubectl.jobs)
        pods = await in_thread(kubectl.service_pods)
        run = next((r for r in runs.listing(jobs, pods) if r["name"] == name), None)
        if run is None:
            raise RunNotFound(f"no run named {name}")
        job = next(j for j in jobs if j["metadata"]["name"] == name)
        pod = runs.pods_by_job(pods).get((run["namespace"], name))
        log = await run_log(job, pod)
        await record_accuracy(run, job, log)
        run.update(pod=pod and pod["metadata"]["name"], node=pod and pod["spec"].get("nodeName"),
                   progress=runs.progress(log))
        return json_response(run)

    @app.get("/jobs/<name>/logs")
    async def run_logs(request, name):
        job, pod = await find_run(name)
        if request.args.get("follow") not in ("1", "true"):
            return text_response(await run_log(job, pod))
        response = await request.respond(content_type="text/plain; charset=utf-8")
        sent = 0
        while True:
            log = await run_log(job, pod)
            if len(log) > sent:
                await response.send(log[sent:])
                sent = len(log)
            if runs.state(job, pod) in runs.FINISHED:
                break
            await asyncio.sleep(FOLLOW_INTERVAL_SECONDS)
            found = await lookup_run(name)
            if found is None:  # cancelled while followed
                break
            job, pod = found
        await response.eof()

    @app.delete("/jobs/<name>")
    async def cancel_run(request, name):
        job, _ = await find_run(name)
        namespace = job["metadata"]["namespace"]
        await in_thread(kubectl.delete_job, namespace, name)
        log.info("cancelled job %s/%s", namespace, name)
        return json_response({"cancelled": name, "namespace": namespace})

    @app.get("/healthz")
    async def healthz(request):
        return json_response({"status": "ok"})

    @app.get("/readyz")
    async def readyz(request):
        await in_thread(kubectl.readyz)
        return json_response({"status": "ready"})

    return app


def main(argv=None):
    settings = config.load()
    parser = argparse.ArgumentParser(description="image-classification training service")
    parser.add_argument("--host", default=settings.host)
    parser.add_argument("--port", type=int, default=settings.port)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    create_app(settings).run(host=args.host, port=args.port, single_process=True,
                             access_log=False, motd=False)


if __name__ == "__main__":
    main()

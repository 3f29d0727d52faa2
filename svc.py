"""The image-classification training service.

    python svc.py [--host 0.0.0.0] [--port 5000]

POST /img-classification/free     {"dataset": "mnist"|"kmnist"} -> a feed-forward run in free-service
POST /img-classification/premium  {"dataset": "mnist"|"kmnist"} -> a convolutional run in default
GET  /config                      every pod of the cluster: node, ip, namespace, name, status
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

import config
import manifest
from kubectl_wrap import Kubectl, KubectlError, pod_summary

log = logging.getLogger("svc")


class BadRequest(SanicException):
    status_code = 400


class ClusterUnavailable(SanicException):
    status_code = 503


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

    @app.after_server_stop
    async def stop_pool(app):
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
        pods = await in_thread(kubectl.pods)
        return json_response({"pods": [pod_summary(pod) for pod in pods]})

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

"""Builds the Job of one training run from yaml/job.yaml, the tier table and the settings."""
import copy
import re
import secrets
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import yaml

TEMPLATE = Path(__file__).resolve().parent / "yaml" / "job.yaml"
MANAGED_BY = {"app.kubernetes.io/managed-by": "img-classification-svc"}
# Labels this service puts on its Jobs and pods; the selector finds exactly its own runs.
SELECTOR = ",".join(f"{key}={value}" for key, value in MANAGED_BY.items())
# When the request arrived, to the millisecond: orders the free tier's queue.
SUBMITTED_ANNOTATION = "img-classification/submitted-at"
# DNS-1123 label, at most 63 characters: the form of every Job name this service creates.
JOB_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@lru_cache(maxsize=1)
def _template():
    return yaml.safe_load(TEMPLATE.read_text())


def job_name(tier, dataset):
    """Readable and unique per request: tier, dataset and a random suffix."""
    return f"{tier.name}-{dataset}-{secrets.token_hex(4)}"


def job_manifest(tier, dataset, settings, name=None):
    job = copy.deepcopy(_template())
    labels = {
        "app.kubernetes.io/name": "img-classification",
        **MANAGED_BY,
        "img-classification/tier": tier.name,
        "img-classification/dataset": dataset,
        "img-classification/model": tier.model,
    }
    submitted = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    job["metadata"].update(name=name or job_name(tier, dataset), namespace=tier.namespace,
                           labels=labels, annotations={SUBMITTED_ANNOTATION: submitted})
    job["spec"]["backoffLimit"] = settings.job_backoff_limit
    job["spec"]["ttlSecondsAfterFinished"] = settings.job_ttl_seconds
    pod = job["spec"]["template"]
    pod["metadata"]["labels"] = dict(labels)
    container = pod["spec"]["containers"][0]
    container["image"] = tier.image
    container["env"] = [{"name": "DATASET", "value": dataset}, {"name": "TYPE", "value": tier.model}]
    figures = {"cpu": settings.cpu, "memory": settings.memory}
    container["resources"] = {"requests": dict(figures), "limits": dict(figures)}
    return job

"""Every setting of the service, read once from the environment, with its default.

| variable                 | default                                 | meaning                               |
|--------------------------|-----------------------------------------|---------------------------------------|
| SVC_HOST / SVC_PORT      | 0.0.0.0 / 5000                          | where `python svc.py` listens         |
| IMAGE_REGISTRY           | (empty: the local images)               | image name prefix, e.g. docker.io/me  |
| IMAGE_TAG                | local                                   | tag of the free and premium images    |
| FREE_IMAGE               | [registry/]img-classification-ff:<tag>  | image of free runs (TYPE=ff)          |
| PREMIUM_IMAGE            | [registry/]img-classification-cnv:<tag> | image of premium runs (TYPE=cnv)      |
| RUN_CPU                  | 900m                                    | CPU request and limit of a run's pod  |
| RUN_MEMORY               | 1536Mi                                  | memory request and limit of a run     |
| JOB_TTL_SECONDS          | 86400                                   | how long a finished Job stays         |
| JOB_BACKOFF_LIMIT        | 1                                       | retries of a failed run               |
| KUBECTL_TIMEOUT_SECONDS  | 15                                      | limit of one kubectl call             |
| KUBECTL_CONCURRENCY      | 8                                       | kubectl processes running at once     |
| QUEUE_HANDOFF            | 1                                       | 0 stops nudging queued free runs      |

`setup.sh eks up` writes the pushed image names to service.env in the checkout (KEY=VALUE
lines); a value there applies unless the environment sets the same variable.
"""
import os
from dataclasses import dataclass
from pathlib import Path

SERVICE_ENV = Path(__file__).resolve().parent / "service.env"
MAX_BODY_BYTES = 4096
DATASETS = ("mnist", "kmnist")


@dataclass(frozen=True)
class Tier:
    """What one tier of the service runs, and where."""
    name: str
    namespace: str
    model: str  # the TYPE classify.py trains
    image: str


@dataclass(frozen=True)
class Settings:
    host: str
    port: int
    tiers: dict  # tier name -> Tier
    cpu: str
    memory: str
    job_ttl_seconds: int
    job_backoff_limit: int
    kubectl_timeout: float
    kubectl_concurrency: int
    queue_handoff: bool


def _file_settings(path):
    """KEY=VALUE lines of service.env, if it exists (comments and blank lines ignored)."""
    if not path.exists():
        return {}
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def load(environ=None, env_file=SERVICE_ENV):
    values = {**_file_settings(env_file), **(os.environ if environ is None else environ)}

    def get(name, default):
        return values.get(name) or default

    registry = get("IMAGE_REGISTRY", "").rstrip("/")
    prefix = f"{registry}/" if registry else ""
    tag = get("IMAGE_TAG", "local")
    return Settings(
        host=get("SVC_HOST", "0.0.0.0"),
        port=int(get("SVC_PORT", "5000")),
        # The one table of tiers: free runs queue behind free-service's quota, premium runs do not.
        tiers={
            "free": Tier("free", "free-service", "ff",
                         get("FREE_IMAGE", f"{prefix}img-classification-ff:{tag}")),
            "premium": Tier("premium", "default", "cnv",
                            get("PREMIUM_IMAGE", f"{prefix}img-classification-cnv:{tag}")),
        },
        cpu=get("RUN_CPU", "900m"),
        memory=get("RUN_MEMORY", "1536Mi"),
        job_ttl_seconds=int(get("JOB_TTL_SECONDS", "86400")),
        job_backoff_limit=int(get("JOB_BACKOFF_LIMIT", "1")),
        kubectl_timeout=float(get("KUBECTL_TIMEOUT_SECONDS", "15")),
        kubectl_concurrency=int(get("KUBECTL_CONCURRENCY", "8")),
        queue_handoff=get("QUEUE_HANDOFF", "1") != "0",
    )

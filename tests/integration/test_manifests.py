"""yaml/ and the verify step of setup.sh, against the real local API server."""
import subprocess
from pathlib import Path

import yaml

from tests.integration.conftest import REPO


def kubernetes_manifests():
    """Every file of yaml/ except eksctl's ClusterConfig, which is not a Kubernetes object."""
    return [path for path in sorted((REPO / "yaml").glob("*.yaml"))
            if all(doc.get("kind") != "ClusterConfig" for doc in yaml.safe_load_all(path.read_text()))]


def test_every_manifest_is_accepted_by_the_api_server(kubectl):
    manifests = kubernetes_manifests()
    assert {path.name for path in manifests} == {"free-service.yaml", "job.yaml"}
    for path in manifests:
        kubectl("apply", "--dry-run=server", "-f", str(path))


def test_verify_step_runs_a_job_per_tier_to_completion(kubeconfig, kubectl):
    result = subprocess.run(["bash", str(REPO / "setup.sh"), "local", "verify"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert " ✓ verify (" in result.stderr
    assert result.stderr.count("condition met") == 2

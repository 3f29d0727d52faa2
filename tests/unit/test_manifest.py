import pytest

import manifest


@pytest.mark.parametrize("tier, dataset, namespace, model", [
    ("free", "mnist", "free-service", "ff"),
    ("premium", "kmnist", "default", "cnv"),
])
def test_job_runs_the_tier_model_on_the_dataset(settings, tier, dataset, namespace, model):
    job = manifest.job_manifest(settings.tiers[tier], dataset, settings)
    assert job["kind"] == "Job" and job["metadata"]["namespace"] == namespace
    assert manifest.JOB_NAME.match(job["metadata"]["name"])
    assert job["metadata"]["name"].startswith(f"{tier}-{dataset}-")
    labels = job["metadata"]["labels"]
    assert labels["img-classification/tier"] == tier
    assert labels["img-classification/dataset"] == dataset
    assert labels["img-classification/model"] == model
    assert job["spec"]["template"]["metadata"]["labels"] == labels
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == settings.tiers[tier].image
    assert {e["name"]: e["value"] for e in container["env"]} == {"DATASET": dataset, "TYPE": model}
    assert container["resources"] == {"requests": {"cpu": "900m", "memory": "1536Mi"},
                                      "limits": {"cpu": "900m", "memory": "1536Mi"}}


def test_job_finishes_once_and_is_cleaned_up(settings):
    job = manifest.job_manifest(settings.tiers["free"], "mnist", settings)
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 1
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400


def test_pod_is_hardened(settings):
    pod = manifest.job_manifest(settings.tiers["premium"], "mnist", settings)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]["securityContext"]
    assert container == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                         "capabilities": {"drop": ["ALL"]}}
    scratch = {v["name"]: v for v in pod["volumes"]}[pod["containers"][0]["volumeMounts"][0]["name"]]
    assert "emptyDir" in scratch


def test_names_are_unique_per_request(settings):
    names = {manifest.job_manifest(settings.tiers["free"], "mnist", settings)["metadata"]["name"]
             for _ in range(500)}
    assert len(names) == 500


def test_template_is_not_changed_by_building_a_job(settings):
    manifest.job_manifest(settings.tiers["premium"], "kmnist", settings)
    job = manifest.job_manifest(settings.tiers["free"], "mnist", settings)
    assert job["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] == "ff"

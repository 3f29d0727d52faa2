"""setup.sh: the plan of `eks up --dry-run`, the eksctl config, usage errors, shellcheck."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def setup_sh(*args, **env):
    return subprocess.run(["bash", str(REPO / "setup.sh"), *args], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL, env={**os.environ, **env})


def plan(result):
    """The commands a dry run would run, in order."""
    return [line[2:].split() for line in result.stdout.splitlines() if line.startswith("+ ")]


def test_eks_up_dry_run_plans_cluster_images_pushes_and_manifests_in_order():
    result = setup_sh("eks", "up", "--dry-run", REGISTRY="docker.io/example", IMAGE_TAG="v1")
    assert result.returncode == 0, result.stderr
    commands = plan(result)
    create = commands.index(["eksctl", "create", "cluster", "-f", "yaml/cluster.yaml"])
    builds = [i for i, c in enumerate(commands) if "build" in c and "-t" in c]
    tags = [commands[i][commands[i].index("-t") + 1] for i in builds]
    assert tags == ["img-classification-base:v1", "img-classification-ff:v1", "img-classification-cnv:v1"]
    pushes = [i for i, c in enumerate(commands) if "push" in c]
    assert [commands[i][-1] for i in pushes] == ["docker.io/example/img-classification-ff:v1",
                                                 "docker.io/example/img-classification-cnv:v1"]
    apply = commands.index(["kubectl", "apply", "-f", "yaml/free-service.yaml"])
    assert create < builds[0] and builds[-1] < pushes[0] and pushes[-1] < apply
    # Every step reported its outcome and duration.
    assert " ✓ push images to docker.io/example (" in result.stderr


def test_dry_run_runs_nothing():
    result = setup_sh("eks", "up", "--dry-run", REGISTRY="docker.io/example")
    assert result.returncode == 0
    assert not (REPO / "service.env").exists() and not (REPO / ".eks").exists()


def test_eks_up_without_a_registry_says_so_before_creating_anything():
    result = setup_sh("eks", "up", "--dry-run", REGISTRY="")
    assert result.returncode == 2
    assert "set REGISTRY" in result.stderr and plan(result) == []


def test_eks_down_needs_confirmation_when_nobody_can_answer():
    result = setup_sh("eks", "down")
    assert result.returncode == 1
    assert "not confirmed; nothing deleted" in result.stderr


@pytest.mark.parametrize("args", [[], ["bogus"], ["eks"], ["eks", "sideways"], ["local", "up", "--force"],
                                  ["clean", "--now"]])
def test_unknown_target_or_flag_prints_usage_and_exits_2(args):
    result = setup_sh(*args)
    assert result.returncode == 2
    assert "bash setup.sh local up|down|status|env|verify" in result.stderr


def test_cluster_config_is_two_t3_medium_in_us_east_1():
    config = yaml.safe_load((REPO / "yaml" / "cluster.yaml").read_text())
    assert config["kind"] == "ClusterConfig" and config["metadata"]["region"] == "us-east-1"
    (group,) = config["managedNodeGroups"]
    assert group["instanceType"] == "t3.medium" and group["desiredCapacity"] == 2


def test_shell_scripts_pass_shellcheck():
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is missing: apt-get install shellcheck (setup.sh test installs it)"
    result = subprocess.run([shellcheck, "setup.sh", "images/debian-base.sh", ".ci/run"], cwd=REPO,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout

"""The base, ff and cnv images, built by `setup.sh images` and run by the real Docker engine
the way a pod runs them: 0.9 CPU, no network, read-only root, non-root, no capabilities."""
import os
import re
import subprocess

import pytest

from tests.integration.conftest import REPO

HARDENED = ["--cpus", "0.9", "--network", "none", "--read-only", "--tmpfs", "/tmp", "--user", "10001",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


def docker():
    """The client setup.sh builds with (Debian's, where the one on PATH lacks buildx)."""
    return "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else "docker"


@pytest.fixture(scope="session")
def images():
    result = subprocess.run(["bash", str(REPO / "setup.sh"), "images"], capture_output=True, text=True,
                            timeout=3000, env={**os.environ, "OFFLINE": os.environ.get("OFFLINE", "1")})
    if result.returncode != 0:
        pytest.fail(f"`setup.sh images` failed (is the Docker engine running?):\n{result.stderr[-3000:]}",
                    pytrace=False)
    tags = result.stdout.split()
    assert tags == ["img-classification-base:local", "img-classification-ff:local",
                    "img-classification-cnv:local"]
    return dict(zip(("base", "ff", "cnv"), tags))


def run(image, *env):
    args = [docker(), "run", "--rm", *HARDENED]
    for pair in env:
        args += ["-e", pair]
    return subprocess.run([*args, image], capture_output=True, text=True, timeout=600)


def test_free_image_trains_the_feed_forward_model_on_mnist(images):
    result = run(images["ff"], "MAX_TRAIN_IMAGES=10000", "EPOCHS=1")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "dataset: mnist"
    # 0.9 CPU: one torch thread, not one per core of the machine.
    assert lines[1] == "model: ff, epochs: 1, threads: 1"
    assert re.match(r"^Epoch \[1/1\], Step \[100/100\], Loss: \d+\.\d{4}$", lines[2])
    assert re.search(r"^Accuracy of the network on the 10000 test images: \d+\.\d\d %$", result.stdout, re.M)
    assert result.stderr == ""


def test_premium_image_trains_the_convolutional_model_on_kmnist(images):
    result = run(images["cnv"], "DATASET=kmnist", "MAX_TRAIN_IMAGES=2000", "EPOCHS=2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("dataset: kmnist\nmodel: cnv")
    # Without KMNIST's training split the run says which subset it used, and never claims 10K.
    assert "offline KMNIST subset" in result.stdout
    assert re.search(r"^Accuracy of the network on the 1500 test images: \d+\.\d\d %$", result.stdout, re.M)


def test_bad_dataset_exits_non_zero_with_its_message(images):
    result = run(images["ff"], "DATASET=bogus")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: DATASET='bogus' is not supported; use one of: mnist, kmnist"


def test_tier_images_add_nothing_but_their_settings_to_the_base(images):
    def size(tag):
        return int(subprocess.run([docker(), "image", "inspect", "-f", "{{.Size}}", tag],
                                  capture_output=True, text=True, check=True).stdout)
    for tier in ("ff", "cnv"):
        assert size(images[tier]) - size(images["base"]) < 1_000_000
        config = subprocess.run([docker(), "image", "inspect", "-f", "{{json .Config.Env}}", images[tier]],
                                capture_output=True, text=True, check=True).stdout
        assert f'"TYPE={tier}"' in config

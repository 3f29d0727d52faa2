"""The training workload: trains and tests one model on one dataset, as a Job's container does.

Environment (required):
  DATASET      mnist | kmnist
  TYPE         ff (feed-forward, the free tier) | cnv (convolutional, premium; `cnn` also works)
Environment (optional):
  EPOCHS            passes over the training set (default: ff 5, cnv 4)
  BATCH_SIZE        images per step (default 100)
  MAX_TRAIN_IMAGES  train on at most this many images, for quick runs (default: all)
  DATA_DIR          where <dataset>/<IDX files> are (default: /data, else ./data)
  SEED              seed of every random choice (default 0): the same run gives the same result
  THREADS           torch threads (default: from the CPU quota of the container)

Prints the dataset, one loss line every 100 steps, and the test accuracy; exits 0. A bad
setting or a missing or damaged data file exits 2 with one line saying what is wrong.
"""
import math
import os
import sys
import time
from pathlib import Path

import idx_data

MODELS = {"ff": "ff", "cnv": "cnv", "cnn": "cnv"}
DEFAULT_EPOCHS = {"ff": 5, "cnv": 4}
# Peak learning rate of the one-cycle schedule (measured: cnv gains 0.1 point at 1e-2).
MAX_LEARNING_RATE = {"ff": 3e-3, "cnv": 1e-2}


class SettingError(Exception):
    pass


def cpu_quota(cgroup_root="/sys/fs/cgroup"):
    """CPUs this process may use under its cgroup's CFS quota (v2 or v1), or None if unlimited."""
    root = Path(cgroup_root)
    try:
        quota, period = (root / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def thread_count(quota, cores):
    """Threads that fit the quota: a 0.9-CPU pod gets 1, not one per core of the node."""
    if quota is None:
        return max(1, cores)
    return max(1, min(cores, math.floor(quota + 0.25)))


def settings(environ):
    dataset = environ.get("DATASET", "")
    if dataset not in idx_data.CHECKSUMS:
        raise SettingError(f"DATASET={dataset!r} is not supported; use one of: mnist, kmnist")
    model = MODELS.get(environ.get("TYPE", ""))
    if model is None:
        raise SettingError(f"TYPE={environ.get('TYPE', '')!r} is not supported; use one of: ff, cnv (or cnn)")

    def positive(name, default):
        value = environ.get(name)
        if not value:
            return default
        if not value.isdigit() or int(value) == 0:
            raise SettingError(f"{name}={value!r} must be a positive whole number")
        return int(value)

    data_dir = environ.get("DATA_DIR") or ("/data" if Path("/data").is_dir() else "data")
    return {
        "dataset": dataset, "model": model,
        "epochs": positive("EPOCHS", DEFAULT_EPOCHS[model]),
        "batch_size": positive("BATCH_SIZE", 100),
        "max_train": positive("MAX_TRAIN_IMAGES", None),
        "seed": int(environ.get("SEED") or 0),
        "threads": positive("THREADS", thread_count(cpu_quota(), os.cpu_count() or 1)),
        "data_dir": data_dir,
    }


def build_model(model):
    from torch import nn

    if model == "ff":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(28 * 28, 512), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(256, 10))

    def block(channels_in, channels_out):
        return [nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(channels_out), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(*block(1, 16), *block(16, 32), *block(32, 64),
                         nn.Flatten(), nn.Dropout(0.2), nn.Linear(64 * 3 * 3, 10))


def normalized(images):
    """uint8 [N, 28, 28] -> float [N, 1, 28, 28] with mean 0 and unit spread (MNIST's figures)."""
    return ((images.float() / 255.0) - 0.1307).div_(0.3081).unsqueeze(1)


def train_and_test(config, out=print):
    import torch
    from torch import nn

    torch.manual_seed(config["seed"])
    torch.set_num_threads(config["threads"])
    train_x, train_y, test_x, test_y, note = idx_data.load(config["dataset"], config["data_dir"])
    if note:
        out(note)
    if config["max_train"]:
        train_x, train_y = train_x[:config["max_train"]], train_y[:config["max_train"]]
    train_x, test_x = normalized(train_x), normalized(test_x)
    train_y, test_y = train_y.long(), test_y.long()

    model = build_model(config["model"])
    batch, epochs = config["batch_size"], config["epochs"]
    steps = math.ceil(len(train_x) / batch)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=MAX_LEARNING_RATE[config["model"]],
                                                   epochs=epochs, steps_per_epoch=steps)
    loss_of = nn.CrossEntropyLoss()
    shuffler = torch.Generator().manual_seed(config["seed"])
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=shuffler)
        for step in range(steps):
            picked = order[step * batch:(step + 1) * batch]
            loss = loss_of(model(train_x[picked]), train_y[picked])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if (step + 1) % 100 == 0:
                out(f"Epoch [{epoch + 1}/{epochs}], Step [{step + 1}/{steps}], Loss: {loss.item():.4f}")

    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(test_x), 1000):
            predicted = model(test_x[start:start + 1000]).argmax(dim=1)
            correct += (predicted == test_y[start:start + 1000]).sum().item()
    accuracy = 100.0 * correct / len(test_x)
    out(f"Accuracy of the network on the {len(test_x)} test images: {accuracy:.2f} %")
    return accuracy


def main(environ=None):
    environ = os.environ if environ is None else environ
    try:
        config = settings(environ)
    except SettingError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"dataset: {config['dataset']}")
    print(f"model: {config['model']}, epochs: {config['epochs']}, threads: {config['threads']}")
    started = time.monotonic()
    try:
        train_and_test(config)
    except idx_data.DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

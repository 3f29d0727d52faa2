"""Training benchmark: the four dataset x model runs on full data at one thread.

    python bench/train_bench.py [--threads 1] [--data-dir data]

Each run is `python classify.py` in its own process (as in a pod); prints dataset, TYPE,
epochs, wall seconds (load + train + test), test accuracy and the run's peak RSS.
"""
import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import classify  # noqa: E402
import idx_data  # noqa: E402


def run(dataset, model, threads, data_dir):
    env = {**os.environ, "DATASET": dataset, "TYPE": model, "THREADS": str(threads),
           "DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, str(REPO / "classify.py")], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    if status != 0:
        raise SystemExit(f"{dataset}/{model} failed:\n{output}")
    accuracy = re.search(r"Accuracy of the network on the (\d+) test images: ([\d.]+) %", output)
    subset = "offline subset" if "offline KMNIST subset" in output else "full"
    return {"dataset": dataset, "type": model, "data": subset, "test images": accuracy.group(1),
            "epochs": classify.DEFAULT_EPOCHS[model], "seconds": f"{seconds:.1f}",
            "accuracy %": accuracy.group(2), "peak RSS MiB": f"{usage.ru_maxrss / 1024:.0f}"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=str(REPO / "data"))
    args = parser.parse_args()
    idx_data.fetch(args.data_dir, offline=os.environ.get("OFFLINE") == "1", log=lambda m: None)
    rows = [run(dataset, model, args.threads, args.data_dir)
            for dataset in ("mnist", "kmnist") for model in ("ff", "cnv")]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(str(row[c]) for c in columns) + " |", flush=True)


if __name__ == "__main__":
    main()

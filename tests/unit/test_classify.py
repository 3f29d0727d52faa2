"""classify.py and idx_data.py: reading and verifying IDX files, settings, models, a short run."""
import gzip
import shutil
import struct
from pathlib import Path

import pytest
import torch
from torchvision.datasets.mnist import read_image_file, read_label_file

import classify
import idx_data

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def data_dir():
    """The verified datasets, fetched as the image build does (offline sources, cached in data/)."""
    idx_data.fetch(REPO / "data", offline=True, log=lambda message: None)
    return REPO / "data"


def write_idx(path, values, shape):
    header = bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + bytes(values))


@pytest.mark.parametrize("name", ["images", "images.gz"])
def test_read_idx_returns_the_declared_shape(tmp_path, name):
    write_idx(tmp_path / name, range(24), (2, 3, 4))
    tensor = idx_data.read_idx(tmp_path / name)
    assert tensor.dtype == torch.uint8 and tuple(tensor.shape) == (2, 3, 4)
    assert tensor[1, 2, 3].item() == 23


def test_read_idx_refuses_a_truncated_file_and_a_foreign_one(tmp_path):
    write_idx(tmp_path / "short", range(10), (2, 3, 4))
    with pytest.raises(idx_data.DataError, match="holds 10 values, its header says 24"):
        idx_data.read_idx(tmp_path / "short")
    (tmp_path / "png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(idx_data.DataError, match="not an IDX file"):
        idx_data.read_idx(tmp_path / "png")


@pytest.mark.parametrize("dataset", ["mnist", "kmnist"])
def test_reader_agrees_with_torchvision(data_dir, tmp_path, dataset):
    for stem, reader in (("t10k-images-idx3-ubyte", read_image_file),
                         ("t10k-labels-idx1-ubyte", read_label_file)):
        path = idx_data.verified(data_dir / dataset, dataset, stem)
        raw = tmp_path / stem  # torchvision reads raw files only
        with (gzip.open if path.name.endswith(".gz") else open)(path, "rb") as source:
            raw.write_bytes(source.read())
        assert torch.equal(idx_data.read_idx(path), reader(str(raw)))


def test_damaged_or_missing_file_is_named(data_dir, tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    source = idx_data.verified(data_dir / "mnist", "mnist", "t10k-labels-idx1-ubyte")
    damaged = folder / source.name
    shutil.copyfile(source, damaged)
    with open(damaged, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\xff")
    with pytest.raises(idx_data.DataError, match="does not match its official MD5"):
        idx_data.verified(folder, "mnist", "t10k-labels-idx1-ubyte")
    with pytest.raises(idx_data.DataError, match=r"t10k-images-idx3-ubyte\[.gz\] is missing"):
        idx_data.load("mnist", tmp_path)


def test_offline_kmnist_is_a_seeded_split_of_the_test_images_and_says_so(data_dir):
    if idx_data.located(data_dir / "kmnist", "train-images-idx3-ubyte"):
        pytest.fail("this check is about the offline subset, but data/ holds KMNIST's training split")
    first = idx_data.load("kmnist", data_dir)
    second = idx_data.load("kmnist", data_dir)
    train_x, train_y, test_x, test_y, note = first
    assert (len(train_x), len(train_y), len(test_x), len(test_y)) == (8500, 8500, 1500, 1500)
    assert "offline KMNIST subset" in note and "8500" in note and "1500" in note
    assert torch.equal(first[2], second[2])


@pytest.mark.parametrize("quota, cores, threads", [
    (0.9, 2, 1), (None, 2, 2), (2.0, 8, 2), (1.5, 2, 1), (3.9, 2, 2), (0.1, 4, 1)])
def test_threads_follow_the_cpu_quota_not_the_cores(quota, cores, threads):
    assert classify.thread_count(quota, cores) == threads


def test_cpu_quota_from_cgroup_v2_and_v1(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("90000 100000\n")
    assert classify.cpu_quota(v2) == pytest.approx(0.9)
    (v2 / "cpu.max").write_text("max 100000\n")
    assert classify.cpu_quota(v2) is None
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("180000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert classify.cpu_quota(tmp_path / "v1") == pytest.approx(1.8)
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert classify.cpu_quota(tmp_path / "v1") is None


@pytest.mark.parametrize("environ, message", [
    ({"DATASET": "bogus", "TYPE": "ff"}, "DATASET='bogus' is not supported; use one of: mnist, kmnist"),
    ({"TYPE": "ff"}, "DATASET='' is not supported"),
    ({"DATASET": "mnist", "TYPE": "rnn"}, "TYPE='rnn' is not supported; use one of: ff, cnv (or cnn)"),
    ({"DATASET": "mnist", "TYPE": "ff", "EPOCHS": "two"}, "EPOCHS='two' must be a positive whole number"),
    ({"DATASET": "mnist", "TYPE": "ff", "BATCH_SIZE": "0"}, "BATCH_SIZE='0' must be a positive"),
])
def test_bad_settings_exit_2_with_one_line(capsys, environ, message):
    assert classify.main(environ) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cnn_is_an_alias_of_cnv():
    assert classify.settings({"DATASET": "kmnist", "TYPE": "cnn"})["model"] == "cnv"


@pytest.mark.parametrize("model", ["ff", "cnv"])
def test_models_map_a_batch_of_images_to_ten_scores(model):
    assert tuple(classify.build_model(model)(torch.zeros(5, 1, 28, 28)).shape) == (5, 10)


def test_short_mnist_ff_run_learns(data_dir, capsys):
    environ = {"DATASET": "mnist", "TYPE": "ff", "EPOCHS": "2", "MAX_TRAIN_IMAGES": "3000",
               "DATA_DIR": str(data_dir), "THREADS": "1"}
    assert classify.main(environ) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "dataset: mnist"
    accuracy_line = [line for line in lines if line.startswith("Accuracy of the network")]
    assert accuracy_line and accuracy_line[0].startswith("Accuracy of the network on the 10000 test images: ")
    assert float(accuracy_line[0].split(": ")[1].rstrip(" %")) > 85


def test_a_run_is_reproducible(data_dir):
    config = classify.settings({"DATASET": "mnist", "TYPE": "ff", "EPOCHS": "1",
                                "MAX_TRAIN_IMAGES": "1000", "DATA_DIR": str(data_dir), "THREADS": "1"})
    assert classify.train_and_test(config, out=lambda line: None) == \
        classify.train_and_test(config, out=lambda line: None)

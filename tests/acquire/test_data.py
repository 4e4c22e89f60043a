"""Tests for acquire.data: IDX reading, data-dir resolution, downloads, split loading."""

import gzip
import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from acquire import data
from acquire.data import DataError, ImageSet, load_split, read_idx, resolve_data_dir



def idx_bytes(array: np.ndarray) -> bytes:
    """Uncompressed IDX encoding of a uint8 array."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx_gz(path: Path, array: np.ndarray) -> Path:
    path.write_bytes(gzip.compress(idx_bytes(array)))
    return path


def make_dir(directory: Path, n: int, seed: int = 0) -> Path:
    """A tiny MNIST-format dir: n train and n+1 test images [*,28,28] with labels 0..9, the first 0."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, count in (("train", n), ("test", n + 1)):
        images_name, labels_name = data.MNIST_FILES[split]
        write_idx_gz(directory / images_name, rng.integers(0, 256, (count, 28, 28)))
        write_idx_gz(directory / labels_name, np.r_[0, rng.integers(0, 10, count - 1)])  # class 0 present
    return directory


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No env var, a private default cache, and no network: any download attempt fails."""
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    def offline(url):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(data, "_fetch_url", offline)


# --- the real MNIST ------------------------------------------------------------------------------


def test_real_test_split_loads(mnist_dir):
    test = load_split("test", mnist_dir, verify_md5=True)
    assert len(test) == 10_000
    assert test.images_NCHW.shape == (10_000, 1, 28, 28)
    assert test.images_NCHW.dtype == torch.uint8
    assert test.labels_N.dtype == torch.int64
    assert set(test.labels_N.tolist()) == set(range(10))
    assert test.labels_N[0].item() == 7
    assert test.images_NCHW.max().item() == 255


def test_real_train_split_loads(mnist_dir):
    train = load_split("train", mnist_dir)
    assert train.images_NCHW.shape == (60_000, 1, 28, 28)
    assert train.labels_N[0].item() == 5


def test_official_md5s():
    assert data.MNIST_MD5 == {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }


# --- where the data comes from ------------------------------------------------------------------


def test_precedence_explicit_then_env_then_cache(tmp_path, monkeypatch):
    explicit, env, cache = (make_dir(tmp_path / name, n) for name, n in (("x", 2), ("e", 3), ("c", 4)))
    monkeypatch.setenv(data.ENV_VAR, str(env))
    assert resolve_data_dir(explicit, cache_dir=cache) == explicit
    assert resolve_data_dir(None, cache_dir=cache) == env
    monkeypatch.delenv(data.ENV_VAR)
    assert resolve_data_dir(None, cache_dir=cache) == cache


def test_load_split_uses_env_var_then_default_cache(tmp_path, monkeypatch):
    make_dir(tmp_path / "xdg" / "gan-acquire" / "mnist", 4)
    assert len(load_split("train")) == 4  # default cache under $XDG_CACHE_HOME
    monkeypatch.setenv(data.ENV_VAR, str(make_dir(tmp_path / "e", 3)))
    assert len(load_split("train")) == 3
    assert len(load_split("train", make_dir(tmp_path / "x", 2))) == 2


def test_explicit_dir_without_files_does_not_fall_through(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(make_dir(tmp_path / "e", 3)))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as err:
        resolve_data_dir(empty)
    assert str(empty) in str(err.value)
    assert "train-images-idx3-ubyte.gz" in str(err.value)


def test_env_dir_without_files_warns_and_uses_cache(tmp_path, monkeypatch):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "nowhere"))
    cache = make_dir(tmp_path / "c", 4)
    with pytest.warns(UserWarning, match="nowhere"):
        assert resolve_data_dir(cache_dir=cache) == cache


def test_ungzipped_files_are_accepted(tmp_path):
    directory = tmp_path / "raw"
    directory.mkdir()
    for split, count in (("train", 2), ("test", 3)):
        images_name, labels_name = data.MNIST_FILES[split]
        (directory / images_name.removesuffix(".gz")).write_bytes(idx_bytes(np.zeros((count, 28, 28))))
        (directory / labels_name.removesuffix(".gz")).write_bytes(idx_bytes(np.arange(count)))
    test = load_split("test", directory)
    assert test.labels_N.tolist() == [0, 1, 2]


@pytest.mark.parametrize("download", [False, True])
def test_missing_everywhere_names_places_and_fixes(tmp_path, monkeypatch, download):
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env-dir"))
    cache = tmp_path / "cache-dir"
    with pytest.warns(UserWarning), pytest.raises(DataError) as err:
        resolve_data_dir(download=download, cache_dir=cache)
    message = str(err.value)
    for needle in (str(tmp_path / "env-dir"), str(cache), data.ENV_VAR, "--data-dir", "internet"):
        assert needle in message
    if download:
        assert all(mirror in message for mirror in data.MIRRORS)
        assert "network disabled in tests" in message
    assert not cache.exists() or not any(cache.iterdir())


def test_missing_everywhere_via_load_split(tmp_path):
    with pytest.raises(DataError) as err:
        load_split("test", download=False)
    assert str(tmp_path / "xdg" / "gan-acquire" / "mnist") in str(err.value)
    assert f"{data.ENV_VAR}: not set" in str(err.value)


# --- downloads -----------------------------------------------------------------------------------


@pytest.fixture
def fake_mirror(tmp_path, monkeypatch):
    """Tiny payloads per MNIST file name, with MNIST_MD5 patched to their md5s."""
    source = make_dir(tmp_path / "source", 2)
    payloads = {name: (source / name).read_bytes() for name in data.MNIST_MD5}
    for name, payload in payloads.items():
        monkeypatch.setitem(data.MNIST_MD5, name, hashlib.md5(payload).hexdigest())
    return payloads


def test_download_fills_cache_with_verified_files(tmp_path, monkeypatch, fake_mirror):
    fetched = []

    def fetch(url):
        fetched.append(url)
        return fake_mirror[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(data, "_fetch_url", fetch)
    cache = tmp_path / "cache"
    assert resolve_data_dir(cache_dir=cache) == cache
    assert sorted(p.name for p in cache.iterdir()) == sorted(data.MNIST_MD5)
    assert all(url.startswith(data.MIRRORS[0]) for url in fetched) and len(fetched) == 4
    assert len(load_split("test", cache)) == 3


def test_download_rejects_wrong_md5_and_tries_next_mirror(tmp_path, monkeypatch, fake_mirror):
    def fetch(url):
        name = url.rsplit("/", 1)[1]
        return b"tampered" if url.startswith(data.MIRRORS[0]) else fake_mirror[name]

    monkeypatch.setattr(data, "_fetch_url", fetch)
    cache = tmp_path / "cache"
    resolve_data_dir(cache_dir=cache)
    for name, payload in fake_mirror.items():
        assert (cache / name).read_bytes() == payload


def test_download_with_wrong_md5_everywhere_leaves_nothing(tmp_path, monkeypatch, fake_mirror):
    monkeypatch.setattr(data, "_fetch_url", lambda url: b"tampered")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="md5"):
        resolve_data_dir(cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_download_only_fetches_missing_files(tmp_path, monkeypatch, fake_mirror):
    cache = make_dir(tmp_path / "cache", 2)
    (cache / "t10k-labels-idx1-ubyte.gz").unlink()
    fetched = []

    def fetch(url):
        fetched.append(url)
        return fake_mirror[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(data, "_fetch_url", fetch)
    resolve_data_dir(cache_dir=cache)
    assert fetched == [data.MIRRORS[0] + "t10k-labels-idx1-ubyte.gz"]


# --- malformed files -----------------------------------------------------------------------------


def test_read_idx_roundtrip_gz_and_raw(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    raw = tmp_path / "a-idx3-ubyte"
    raw.write_bytes(idx_bytes(array))
    for path in (raw, write_idx_gz(tmp_path / "a-idx3-ubyte.gz", array)):
        tensor = read_idx(path)
        assert tensor.dtype == torch.uint8 and tensor.tolist() == array.tolist()
        tensor[0, 0, 0] = 99  # writable copy


def test_read_idx_big_endian_int32(tmp_path):
    path = tmp_path / "ints-idx1-int"
    payload = np.array([1, -2, 70000], ">i4").tobytes()
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big") + payload)
    assert read_idx(path).tolist() == [1, -2, 70000]


def test_truncated_gz_names_file(tmp_path):
    path = write_idx_gz(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((5, 28, 28)))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz") as err:
        read_idx(path)
    assert "delete" in str(err.value)


@pytest.mark.parametrize(
    "payload, problem",
    [
        (b"\x01\x00\x08\x01" + (1).to_bytes(4, "big") + b"\x00", "magic"),
        (b"\x00\x00\x08\x03" + (1).to_bytes(4, "big"), "header"),
        (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x00" * 4, "payload"),
        (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"\x00" * 6, "payload"),
    ],
    ids=["wrong-magic", "short-header", "short-payload", "long-payload"],
)
def test_malformed_idx_names_file_and_problem(tmp_path, payload, problem):
    path = tmp_path / "bad-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(payload))
    with pytest.raises(DataError, match=problem) as err:
        read_idx(path)
    assert str(path) in str(err.value)


def test_unreadable_file_names_file(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="absent.gz"):
        read_idx(tmp_path / "absent.gz")
    path = write_idx_gz(tmp_path / "locked.gz", np.zeros(3))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(gzip, "open", refuse)  # as root, chmod 0o000 would not stop the read
    with pytest.raises(DataError, match=r"locked.gz: permission denied; make it readable") as error:
        read_idx(path)
    assert "download" not in str(error.value)


def test_count_mismatch_names_both_files(tmp_path):
    directory = make_dir(tmp_path / "d", 4)
    write_idx_gz(directory / "t10k-labels-idx1-ubyte.gz", np.zeros(3))
    with pytest.raises(DataError) as err:
        load_split("test", directory)
    assert "t10k-images-idx3-ubyte.gz" in str(err.value) and "t10k-labels-idx1-ubyte.gz" in str(err.value)


def test_corrupt_file_in_data_dir_surfaces_through_load_split(tmp_path):
    directory = make_dir(tmp_path / "d", 4)
    (directory / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load_split("train", directory)


# --- other MNIST-format data sets -------------------------------------------------------------------


def test_fashion_like_dir_loads_and_fails_only_md5(tmp_path):
    directory = tmp_path / "fashion"
    directory.mkdir()
    images = np.full((6, 28, 28), 200, dtype=np.uint8)
    write_idx_gz(directory / "t10k-images-idx3-ubyte.gz", images)
    write_idx_gz(directory / "t10k-labels-idx1-ubyte.gz", np.array([9, 0, 0, 3, 0, 2]))
    make_dir(tmp_path / "other", 2)
    for name in data.MNIST_FILES["train"]:
        (directory / name).write_bytes((tmp_path / "other" / name).read_bytes())
    fashion = load_split("test", directory)
    assert fashion.images_NCHW.shape == (6, 1, 28, 28)
    assert fashion.labels_N.tolist() == [9, 0, 0, 3, 0, 2]
    assert torch.all(fashion.images_NCHW == 200)
    with pytest.raises(DataError, match="md5"):
        load_split("test", directory, verify_md5=True)


# --- ImageSet ------------------------------------------------------------------------------------


def test_imageset_subset_and_to():
    images = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 1, 2, 2).clone()
    labelled = ImageSet(images, torch.arange(5) + 10)
    part = labelled.subset(torch.tensor([4, 1]))
    assert len(part) == 2
    assert part.labels_N.tolist() == [14, 11]
    assert part.images_NCHW[:, 0, 0, 0].tolist() == [4, 1]
    moved = part.to("cpu")
    assert moved.images_NCHW.device.type == "cpu" and torch.equal(moved.labels_N, part.labels_N)


@pytest.mark.parametrize(
    "images, labels, problem",
    [
        (torch.zeros(3, 1, 2, 2), torch.zeros(3, dtype=torch.int64), "uint8"),
        (torch.zeros(3, 2, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64), "4-D"),
        (torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.zeros(3, dtype=torch.int32), "int64"),
        (torch.zeros(3, 1, 2, 2, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), "3 images but 2"),
    ],
)
def test_imageset_rejects_bad_tensors(images, labels, problem):
    with pytest.raises(ValueError, match=problem):
        ImageSet(images, labels)


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="train"):
        load_split("validation")


# --- arrays, tensors and .npz files --------------------------------------------------------------


def test_arrays_and_tensors_of_any_shape_become_uint8_image_sets():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 3, 4, 6), dtype=np.uint8)
    from_numpy = data.as_image_set(pixels, np.array([0, 3, 1, 2, 3]))
    assert from_numpy.images_NCHW.shape == (5, 3, 4, 6) and from_numpy.labels_N.dtype == torch.int64
    from_floats = data.as_image_set(torch.from_numpy(pixels / 255.0), torch.tensor([0, 3, 1, 2, 3], dtype=torch.int32))
    assert torch.equal(from_floats.images_NCHW, from_numpy.images_NCHW)  # floats round to the nearest of 256 levels
    grey = data.as_image_set(pixels[:, 0].astype(np.int64), [1, 1, 0, 0, 2])  # [N,H,W] integers in 0..255
    assert grey.images_NCHW.shape == (5, 1, 4, 6) and grey.images_NCHW.dtype == torch.uint8
    assert data.as_image_set(pixels[:, :, ::-1, :], np.zeros(5, int)).images_NCHW.shape == (5, 3, 4, 6)  # any strides


@pytest.mark.parametrize("images, labels, problem", [
    (np.zeros((2, 3)), [0, 1], r"\[N,H,W\] or \[N,C,H,W\]"),
    (np.full((2, 4, 4), 1.5), [0, 1], r"float images must lie in \[0, 1\].*divide"),
    (np.full((2, 4, 4), np.nan), [0, 1], r"^images contain NaN; replace or drop"),
    (np.full((2, 8, 8, 3), 0.5), [0, 1], r"look channels-last \[N,H,W,C\]; pass channels_last=True"),
    (np.zeros((2, 4, 4)), [1, 2], r"labels run 1..2 with no label 0.*subtract 1"),
    (np.full((2, 4, 4), 300), [0, 1], "integer images must lie in 0..255"),
    (np.full((2, 4, 4), 40000, np.uint16), [0, 1], r"^images of dtype torch.uint16 are not read; convert them to "
                                                   r"uint8 \(0..255\), or to float in \[0, 1\]"),
    (np.full((2, 4, 4), 7, np.uint32), [0, 1], r"^images of dtype torch.uint32 are not read"),
    (np.zeros((2, 4, 4)), np.eye(2), "not one-hot.*argmax"),
    (np.zeros((2, 4, 4)), np.array([0.0, 1.0]), "integer class indices.*astype"),
    (np.zeros((2, 4, 4)), [0, -1], "got a label -1"),
    (np.zeros((2, 4, 4)), [0, 1, 2], "2 images but 3 labels"),
])
def test_bad_arrays_are_refused_with_the_fix(images, labels, problem):
    with pytest.raises(ValueError, match=problem):
        data.as_image_set(images, labels)


def test_npz_files_load_by_split_or_as_one_set(tmp_path):
    rng = np.random.default_rng(1)
    x, y = rng.random((6, 3, 8, 8)).astype(np.float32), rng.integers(0, 5, 6)
    np.savez(tmp_path / "splits.npz", x_train=x[:4], y_train=y[:4], x_test=x[4:], y_test=y[4:])
    grey = (x[:, 0] * 255).round().astype(np.uint8)
    np.savez(tmp_path / "one.npz", x=grey, y=y)
    train, test = (data.load_dataset(tmp_path / "splits.npz", split) for split in ("train", "test"))
    assert train.images_NCHW.shape == (4, 3, 8, 8) and test.labels_N.tolist() == y[4:].tolist()
    one = data.load_npz(tmp_path / "one.npz")
    assert one.images_NCHW.shape == (6, 1, 8, 8) and torch.equal(one.images_NCHW[:, 0], torch.from_numpy(grey))
    with pytest.raises(DataError, match=r"no array\(s\) \['x', 'y'\] \(it holds \['x_test'.*x_train, y_train"):
        data.load_npz(tmp_path / "splits.npz")
    with pytest.raises(DataError, match="does not exist"):
        data.load_npz(tmp_path / "missing.npz", "train")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="cannot be read as an .npz"):
        data.load_npz(tmp_path / "bad.npz", "train")
    np.savez(tmp_path / "floats.npz", x=x * 2, y=y)
    with pytest.raises(DataError, match=r"floats.npz: float images must lie in \[0, 1\]"):
        data.load_npz(tmp_path / "floats.npz")


def test_load_dataset_reads_an_idx_directory_too(tmp_path):
    directory = make_dir(tmp_path / "idx", 3)
    assert torch.equal(data.load_dataset(directory, "test").labels_N, load_split("test", directory).labels_N)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_a_colour_idx_directory_loads_with_three_channels(tmp_path, layout):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (5, 3, 6, 7), dtype=np.uint8)
    for split in ("train", "test"):
        images_name, labels_name = data.MNIST_FILES[split]
        write_idx_gz(tmp_path / images_name, pixels if layout == "NCHW" else pixels.transpose(0, 2, 3, 1))
        write_idx_gz(tmp_path / labels_name, np.array([0, 1, 2, 1, 0]))
    colour = load_split("train", tmp_path)
    assert torch.equal(colour.images_NCHW, torch.from_numpy(pixels)) and colour.name == tmp_path.name


def test_an_idx_images_file_of_another_shape_is_not_blamed_on_the_download(tmp_path):
    make_dir(tmp_path, 3)
    write_idx_gz(tmp_path / data.MNIST_FILES["train"][0], np.zeros((3, 5, 6, 7)))
    with pytest.raises(DataError, match=r"holds images of shape \[3, 5, 6, 7\]; an IDX images file must be") as error:
        load_split("train", tmp_path)
    assert "download" not in str(error.value)


def test_an_npz_of_x_and_y_is_split_seeded_and_stratified_with_the_split_recorded(tmp_path):
    y = np.repeat(np.arange(3), 10)
    x = np.arange(30, dtype=np.uint8)[:, None, None].repeat(4, 1).repeat(4, 2)
    np.savez(tmp_path / "mine.npz", x=x, y=y, class_names=np.array(["ant", "bee", "cat"]))
    train, test, name = data.load_train_test(tmp_path / "mine.npz")
    assert name == "mine" and train.class_names == ("ant", "bee", "cat") and len(train) == 24 and len(test) == 6
    assert torch.bincount(test.labels_N).tolist() == [2, 2, 2]
    assert sorted(train.files + test.files, key=lambda f: int(f[2:-1])) == [f"x[{i}]" for i in range(30)]
    assert [f"x[{i}]" for i in test.images_NCHW[:, 0, 0, 0].tolist()] == list(test.files)  # files name the images
    assert data.load_npz(tmp_path / "mine.npz", "test").files == test.files
    assert repr(test) == "ImageSet(6 images 1x4x4 uint8, 3 classes (ant, bee, cat), 'mine')"


def test_labels_from_one_are_judged_over_every_split_of_an_npz(tmp_path):
    x = np.zeros((4, 4, 4), np.uint8)
    np.savez(tmp_path / "ok.npz", x_train=x, y_train=[0, 1, 2, 1], x_test=x, y_test=[1, 2, 2, 1])
    assert data.load_dataset(tmp_path / "ok.npz", "test").labels_N.tolist() == [1, 2, 2, 1]
    np.savez(tmp_path / "bad.npz", x_train=x, y_train=[1, 1, 2, 3], x_test=x, y_test=[1, 2, 2, 1])
    with pytest.raises(DataError, match=r"bad.npz: labels run 1..3 with no label 0"):
        data.load_dataset(tmp_path / "bad.npz", "train")


def test_channels_last_arrays_are_transposed_only_when_asked():
    pixels = np.random.default_rng(3).integers(0, 256, (2, 8, 9, 3), dtype=np.uint8)
    images = data.as_image_set(pixels, [0, 1], channels_last=True, class_names=["cat", "dog"], name="pets")
    assert torch.equal(images.images_NCHW, torch.from_numpy(pixels).permute(0, 3, 1, 2))
    assert (images.class_names, images.name, images.classes) == (("cat", "dog"), "pets", ("cat", "dog"))
    assert data.as_image_set(pixels[..., 0], [1, 2], class_names="abc").images_NCHW.shape == (2, 1, 8, 9)


def test_class_names_must_cover_every_label_and_default_to_numbers():
    images = torch.zeros(3, 1, 2, 2, dtype=torch.uint8)
    assert ImageSet(images, torch.tensor([0, 2, 1])).classes == ("0", "1", "2")
    with pytest.raises(ValueError, match="a label 2 but only 2 class names"):
        ImageSet(images, torch.tensor([0, 2, 1]), class_names=("a", "b"))
    named = ImageSet(images, torch.tensor([0, 2, 1]), class_names=("a", "b", "c"), name="abc", files=("p", "q", "r"))
    part = named.subset(torch.tensor([2, 0]))
    assert (part.class_names, part.name, part.files) == (("a", "b", "c"), "abc", ("r", "p"))
    empty = ImageSet(images[:0], torch.zeros(0, dtype=torch.int64))
    assert repr(empty) == "ImageSet(0 images 1x2x2 uint8, 0 classes ())"


def test_class_balanced_indices_take_per_class_counts_and_a_seed():
    labels_N = torch.arange(40) % 4
    old_way = []  # what the sampler always drew: n/K of each class in class order from one generator
    generator = torch.Generator().manual_seed(7)
    for c in range(4):
        members = (labels_N == c).nonzero().squeeze(1)
        old_way.append(members[torch.randperm(10, generator=generator)[:2]])
    assert torch.equal(data.class_balanced_indices(labels_N, 8, torch.Generator().manual_seed(7)), torch.cat(old_way))
    assert torch.equal(data.class_balanced_indices(labels_N, 8, 7), torch.cat(old_way))  # an int seed is the same
    counts = data.class_balanced_indices(labels_N, [3, 0, 1, 10], 0)
    assert torch.bincount(labels_N[counts], minlength=4).tolist() == [3, 0, 1, 10] and len(set(counts.tolist())) == 14
    with pytest.raises(ValueError, match="only 10 exist"):
        data.class_balanced_indices(labels_N, [11, 0, 0, 0], 0)
    with pytest.raises(ValueError, match="4 numbers >= 0, one per class"):
        data.class_balanced_indices(labels_N, [1, 1], 0, num_classes=4)
    with pytest.raises(ValueError, match="positive multiple of 4"):
        data.class_balanced_indices(labels_N, 6, 0)


def test_an_idx_file_of_other_pixels_or_an_empty_npz_is_refused_by_name(tmp_path):
    make_dir(tmp_path, 3)
    header = bytes([0, 0, 0x0D, 3]) + b"".join(d.to_bytes(4, "big") for d in (3, 28, 28))
    (tmp_path / data.MNIST_FILES["train"][0]).write_bytes(gzip.compress(header + bytes(4 * 3 * 28 * 28)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz holds torch.float32 images .* must hold uint8"):
        load_split("train", tmp_path)
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 4, 4), np.uint8), y=np.zeros(0, int))
    with pytest.raises(DataError, match="no images cannot be split"):
        data.load_npz(tmp_path / "empty.npz", "train")


def test_idx_labels_from_one_are_refused_over_both_splits(tmp_path):
    make_dir(tmp_path, 3)
    write_idx_gz(tmp_path / data.MNIST_FILES["test"][1], np.array([1, 2, 3, 2]))
    assert load_split("test", tmp_path).labels_N.min() >= 0  # train has labels 0..9 (make_dir): a chance gap
    write_idx_gz(tmp_path / data.MNIST_FILES["train"][1], np.array([1, 2, 1]))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte.gz: labels run 1..3 with no label 0"):
        load_split("test", tmp_path)

"""Folders of image files: both layouts, colour and grayscale, a recorded seeded split, and one-line refusals."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from acquire.data import DataError, data_format, load_split, load_train_test, resolve_data_dir
from tests.mnist_slices import colour_crops, write_image_folder

FASHION_FOUR = ["t-shirt", "trouser", "pullover", "dress"]  # Fashion-MNIST classes 0..3


@pytest.fixture(scope="module")
def fashion_four(fashion_dir):
    """The first 40 training images of each of Fashion-MNIST's classes 0..3."""
    train = load_split("train", fashion_dir)
    index = torch.cat([(train.labels_N == k).nonzero().squeeze(1)[:40] for k in range(4)])
    return train.subset(index)


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory, fashion_four) -> tuple[Path, np.ndarray]:
    """Fashion-MNIST as 3-channel 48x48 crops in one folder per class (4 classes), and the pixels written."""
    pixels = colour_crops(fashion_four)
    root = tmp_path_factory.mktemp("data") / "fashion4"
    return write_image_folder(root, pixels, fashion_four.labels_N.numpy(), FASHION_FOUR), pixels


def test_a_colour_class_folder_loads_with_a_recorded_seeded_stratified_split(colour_folder):
    root, pixels = colour_folder
    assert data_format(root) == "image-classes" and resolve_data_dir(root) == root
    train, test, name = load_train_test(root)
    assert name == "fashion4" and train.name == test.name == "fashion4"
    assert train.images_NCHW.shape == (128, 3, 48, 48) and test.images_NCHW.shape == (32, 3, 48, 48)
    assert train.class_names == test.class_names == ("dress", "pullover", "t-shirt", "trouser")  # sorted folders
    assert torch.bincount(test.labels_N).tolist() == [8, 8, 8, 8]  # 20% of each class
    assert sorted(train.files + test.files) == sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png"))
    first = train.files[0]  # each image is the file it names, in colour, with its folder's class
    assert np.array_equal(train.images_NCHW[0].permute(1, 2, 0).numpy(), pixels[int(Path(first).stem)])
    assert train.class_names[int(train.labels_N[0])] == first.split("/")[0]
    assert load_split("test", root).files == test.files  # the same split every time
    assert load_split("test", root, split_seed=1).files != test.files
    assert repr(train) == ("ImageSet(128 images 3x48x48 uint8, 4 classes (dress, pullover, t-shirt, trouser), "
                           "'fashion4')")


def test_train_and_test_folders_of_grayscale_jpgs_load_per_split(tmp_path, mnist_dir):
    real_train, real_test = load_split("train", mnist_dir), load_split("test", mnist_dir)
    names = [f"digit{k}" for k in range(10)]
    write_image_folder(tmp_path / "d" / "train", real_train.images_NCHW[:60, 0].numpy(), real_train.labels_N[:60],
                       names, suffix=".jpg")
    write_image_folder(tmp_path / "d" / "test", real_test.images_NCHW[:30, 0].numpy(), real_test.labels_N[:30], names)
    assert data_format(tmp_path / "d") == "image-splits"
    train, test, _ = load_train_test(tmp_path / "d")
    assert train.images_NCHW.shape == (60, 1, 28, 28) and test.images_NCHW.shape == (30, 1, 28, 28)
    assert torch.equal(test.images_NCHW[test.labels_N == 7][0], real_test.images_NCHW[0])  # PNG is exact
    assert sorted(test.labels_N.tolist()) == sorted(real_test.labels_N[:30].tolist())
    (tmp_path / "d" / "test" / "zebra").mkdir()
    with pytest.raises(DataError, match=r"class folder\(s\) \['zebra'\] that .*train lacks"):
        load_split("test", tmp_path / "d")


def save(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def two_classes(tmp_path) -> Path:
    """A valid folder: classes a and b, three 8x8 grayscale images each."""
    for name in ("a", "b"):
        for i in range(3):
            save(tmp_path / "set" / name / f"{i}.png", np.full((8, 8), 40 * i, np.uint8))
    return tmp_path / "set"


def test_mixed_sizes_name_two_files_and_their_sizes(two_classes):
    save(two_classes / "b" / "big.png", np.zeros((9, 12), np.uint8))
    with pytest.raises(DataError, match=r"^images differ in size: .*a/0.png is 8x8 but .*b/big.png is 12x9; resize"):
        load_split("train", two_classes)


def test_an_unreadable_file_is_named(two_classes):
    (two_classes / "a" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"a/broken.png cannot be read as an image \(.*\); replace or remove it$"):
        load_split("train", two_classes)


def test_a_file_that_is_not_an_image_is_named(two_classes):
    (two_classes / "b" / "notes.txt").write_text("labels checked by hand")
    (two_classes / "b" / ".DS_Store").write_bytes(b"\0")  # hidden files are skipped
    with pytest.raises(DataError, match=r"b/notes.txt is not an image file"):
        load_split("train", two_classes)


def test_a_single_class_and_an_empty_class_folder_are_refused(two_classes):
    (two_classes / "c").mkdir()
    with pytest.raises(DataError, match=r"c is an empty class folder"):
        load_split("train", two_classes)
    for path in (two_classes / "b").iterdir():
        path.unlink()
    (two_classes / "b").rmdir()
    (two_classes / "c").rmdir()
    with pytest.raises(DataError, match=r"holds a single class folder \(a\); a classifier needs at least 2 classes"):
        load_split("train", two_classes)


def test_an_empty_folder_is_not_a_data_set(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty.* \\(an empty folder\\)"):
        load_split("train", tmp_path / "empty")


def test_a_class_with_one_image_cannot_be_split(two_classes):
    save(two_classes / "lonely" / "0.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match="class 'lonely' has 1 image; a test split needs at least 2"):
        load_split("test", two_classes)


def test_one_colour_image_makes_the_whole_set_rgb(two_classes):
    save(two_classes / "a" / "red.png", np.dstack([np.full((8, 8), 200, np.uint8)] + [np.zeros((8, 8), np.uint8)] * 2))
    whole = torch.cat([load_split(split, two_classes).images_NCHW for split in ("train", "test")])
    assert whole.shape == (7, 3, 8, 8)
    assert {tuple(image[:, 0, 0].tolist()) for image in whole} == {(0, 0, 0), (40, 40, 40), (80, 80, 80), (200, 0, 0)}


def test_a_folder_of_data_sets_is_not_a_folder_of_classes(tmp_path):
    (tmp_path / "sets" / "mnist").mkdir(parents=True)
    (tmp_path / "sets" / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    assert data_format(tmp_path / "sets") is None
    with pytest.raises(DataError, match="No data set found"):
        resolve_data_dir(tmp_path / "sets")


def test_a_train_folder_without_a_test_folder_is_not_taken_for_one_class(two_classes):
    two_classes.rename(two_classes.parent / "train")
    (two_classes.parent / "set").mkdir()
    (two_classes.parent / "train").rename(two_classes / "train")
    with pytest.raises(DataError, match=r"set has train/ but no test/ beside it; add test/<class>/ folders"):
        load_split("train", two_classes)

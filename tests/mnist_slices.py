"""Writing data sets for tests from slices of the real data: MNIST-format directories (optionally with labels or sizes
changed) and folders of image files."""

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from acquire.data import MNIST_FILES, ImageSet, load_split


def write_idx_gz(path: Path, array: np.ndarray) -> Path:
    """A uint8 array as a gzipped IDX file."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes()))
    return path


def write_mnist_slice(directory: Path, mnist_dir: Path, train: int = 300, test: int = 100, train_labels=None,
                      test_labels=None, side: int = 28) -> Path:
    """The first `train` / `test` real images of each split as an MNIST directory; train_labels / test_labels
    (functions of the real label array) replace the labels, `side` != 28 crops or pads the images."""
    directory.mkdir(parents=True, exist_ok=True)
    for split, count, relabel in (("train", train, train_labels), ("test", test, test_labels)):
        images = load_split(split, mnist_dir).subset(range(count))
        pixels = images.images_NCHW[:, 0].numpy()
        if side < 28:
            pixels = pixels[:, :side, :side]
        elif side > 28:
            pad = (side - 28) // 2
            pixels = np.pad(pixels, ((0, 0), (pad, side - 28 - pad), (pad, side - 28 - pad)))
        labels = images.labels_N.numpy()
        write_idx_gz(directory / MNIST_FILES[split][0], pixels)
        write_idx_gz(directory / MNIST_FILES[split][1], labels if relabel is None else relabel(labels))
    return directory


def colour_crops(images: ImageSet, side: int = 48) -> np.ndarray:
    """Each 1x28x28 image resized to side x side and tinted into 3 channels: uint8 [N,side,side,3]."""
    grey = np.stack([np.asarray(Image.fromarray(image[0].numpy()).resize((side, side)))
                     for image in images.images_NCHW])
    return np.stack([grey, grey // 2, 255 - grey], axis=3)


def write_image_folder(directory: Path, pixels: np.ndarray, labels: np.ndarray, class_names: list[str],
                       suffix: str = ".png") -> Path:
    """Images uint8 [N,H,W] or [N,H,W,3] as directory/<class name>/<i><suffix>, one folder per class in labels."""
    for i, (image, label) in enumerate(zip(pixels, labels)):
        folder = directory / class_names[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}{suffix}")
    return directory

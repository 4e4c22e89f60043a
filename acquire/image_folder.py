"""Folders of image files, read with Pillow, laid out as torchvision's ImageFolder.

Two layouts: ``train/<class>/...`` beside ``test/<class>/...`` (one split each; the classes are train's), or one
``<class>/...`` folder per class, split by `acquire.data.stratified_split` (seeded; each image's file is kept on the
ImageSet, so the split is on record). Classes are the folder names in sorted order (label k is the k-th name);
images may lie in sub-folders of their class folder; hidden files are skipped. All images must have one size:
grayscale images give C = 1, and one colour image makes the whole set RGB (C = 3, grayscale repeated).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from acquire.data import FOLDER_HELP, DataError, ImageSet, stratified_split

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})


def folder_layout(root: Path) -> str | None:
    """"image-splits" (train/ and test/ folders), "image-classes" (folders, one at least holding an image file), or
    None (a folder of other data sets, say, is no data set)."""
    root = Path(root)
    if (root / "train").is_dir() and (root / "test").is_dir():
        return "image-splits"
    images = (path for folder in _class_folders(root) for path in folder.rglob("*"))
    return "image-classes" if any(path.suffix.lower() in IMAGE_SUFFIXES for path in images) else None


def load_image_folder(root: Path, split: str, *, test_fraction: float, split_seed: int) -> ImageSet:
    """The ``"train"`` or ``"test"`` split of the image folder at `root`: images uint8 [N,C,H,W], labels [N]."""
    root = Path(root)
    if folder_layout(root) == "image-splits":
        classes = _class_names(root / "train")
        if split == "test":
            unknown = [p.name for p in _class_folders(root / "test") if p.name not in classes]
            if unknown:
                raise DataError(f"{root / 'test'} has class folder(s) {unknown} that {root / 'train'} lacks (it has "
                                f"{list(classes)}); the test classes must be the training classes")
        return _read_tree(root / split, classes, root)
    for have, lack in (("train", "test"), ("test", "train")):
        if (root / have).is_dir():
            raise DataError(f"{root} has {have}/ but no {lack}/ beside it; add {lack}/<class>/ folders, or give the "
                            f"class folders of {have}/ to be split")
    whole = _read_tree(root, _class_names(root), root)
    train_index, test_index = stratified_split(whole.labels_N, test_fraction, split_seed, whole.class_names)
    return whole.subset(train_index if split == "train" else test_index)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def _class_folders(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).iterdir() if p.is_dir() and _visible(p))


def _class_names(directory: Path) -> tuple[str, ...]:
    """The sorted class folder names in `directory`; refuses none or one."""
    names = tuple(p.name for p in _class_folders(directory))
    if not names:
        raise DataError(f"{directory} holds no class folders; put each class's images in a folder named after it "
                        f"({FOLDER_HELP})")
    if len(names) == 1:
        raise DataError(f"{directory} holds a single class folder ({names[0]}); a classifier needs at least 2 "
                        "classes, one folder each")
    return names


def _image_files(folder: Path) -> list[Path]:
    """The image files under `folder` (sorted), refusing empty folders and files that are not images."""
    files = sorted(p for p in folder.rglob("*") if p.is_file()
                   and all(_visible(part) for part in p.relative_to(folder).parents if part != Path("."))
                   and _visible(p))
    for path in files:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{path} is not an image file (expected {', '.join(IMAGE_SUFFIXES)}); move it out of "
                            f"{folder}")
    if not files:
        raise DataError(f"{folder} is an empty class folder; add its images or remove the folder")
    return files


def _read(path: Path) -> np.ndarray:
    """The pixels of one image file: uint8 [H,W] (grayscale) or [H,W,3] (colour, alpha dropped)."""
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert("L" if image.mode in GRAY_MODES else "RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        reason = " ".join(str(error).split())
        raise DataError(f"{path} cannot be read as an image ({reason}); replace or remove it") from None


def _read_tree(directory: Path, classes: tuple[str, ...], root: Path) -> ImageSet:
    """The images of directory/<class>/ for each of `classes` present there, labelled by their position."""
    files, labels, pixels = [], [], []
    first = None
    for label, name in enumerate(classes):
        if not (directory / name).is_dir():
            continue
        for path in _image_files(directory / name):
            array = _read(path)
            pixels.append(array)
            if first is None:
                first = (path, array.shape[:2])
            elif array.shape[:2] != first[1]:
                (h0, w0), (h, w) = first[1], array.shape[:2]
                raise DataError(f"images differ in size: {first[0]} is {w0}x{h0} but {path} is {w}x{h}; resize them "
                                "all to one size")
            files.append(path.relative_to(root).as_posix())
            labels.append(label)
    if not pixels:
        raise DataError(f"{directory} holds none of the class folders {list(classes)}; add them ({FOLDER_HELP})")
    if any(array.ndim == 3 for array in pixels):
        pixels = [array if array.ndim == 3 else np.repeat(array[:, :, None], 3, axis=2) for array in pixels]
        images_NCHW = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()
    else:
        images_NCHW = torch.from_numpy(np.stack(pixels)).unsqueeze(1)
    return ImageSet(images_NCHW, torch.tensor(labels, dtype=torch.int64), class_names=classes, name=root.name,
                    files=files)

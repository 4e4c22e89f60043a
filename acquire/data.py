"""Labelled images: the `ImageSet` type, and loading one from arrays or from a data set on disk.

A data set on disk is any of (`data_format`): a directory of MNIST-format IDX files (1 or 3 channels; Fashion-MNIST
has the same file names), an ``.npz`` file (``x_train, y_train, x_test, y_test``, or ``x, y``), or a folder of images
(`acquire.image_folder`). Where it comes from, in order: an explicit ``data_dir`` (``--data-dir``), the path in
``$GAN_ACQUIRE_DATA``, then a per-user MNIST cache (``$XDG_CACHE_HOME/gan-acquire/mnist``) filled from public mirrors
on first use. A data set without a test split of its own is split by `stratified_split`, seeded. Arrays and tensors
of any N×C×H×W shape and any number of classes go through `as_image_set`.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
import warnings
import zlib
from dataclasses import dataclass, replace
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from acquire.errors import UserError

ENV_VAR = "GAN_ACQUIRE_DATA"

MNIST_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

MNIST_MD5: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}

MIRRORS = ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"]
DOWNLOAD_TIMEOUT_S = 30.0

# IDX type code -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_ALL_FILES = [name for pair in MNIST_FILES.values() for name in pair]

# A data set with no test split of its own gives this share of each class to the test set, drawn with this seed.
TEST_FRACTION = 0.2
SPLIT_SEED = 0

NPZ_HELP = "x_train, y_train, x_test, y_test, or x, y to be split"
FOLDER_HELP = "train/<class>/*.png|jpg beside test/<class>/..., or one <class>/ folder per class to be split"


class DataError(UserError):
    """Data missing, corrupt or malformed; the message names the file/dirs and the fix."""


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Labelled images: ``images_NCHW`` uint8 [N,C,H,W] (MNIST: [N,1,28,28]), ``labels_N`` int64 [N] in 0..K-1.

    class_names: the name of each class 0..K-1 (None: "0".."K-1", see `classes`); name: the data set's name (its
    directory or file name) for titles and figures; files: where each image came from (its path under the data
    set's root for an image folder, "x[i]" for an array of an .npz file; None: the order of the source file).
    """

    images_NCHW: torch.Tensor
    labels_N: torch.Tensor
    class_names: tuple[str, ...] | None = None
    name: str | None = None
    files: tuple[str, ...] | None = None

    def __post_init__(self):
        if self.images_NCHW.dtype != torch.uint8 or self.images_NCHW.dim() != 4:
            raise UserError(
                f"ImageSet.images_NCHW must be a 4-D uint8 tensor [N,C,H,W], got "
                f"{self.images_NCHW.dtype} of shape {list(self.images_NCHW.shape)}"
            )
        if self.labels_N.dtype != torch.int64 or self.labels_N.dim() != 1:
            raise UserError(
                f"ImageSet.labels_N must be a 1-D int64 tensor [N], got "
                f"{self.labels_N.dtype} of shape {list(self.labels_N.shape)}"
            )
        if len(self.images_NCHW) != len(self.labels_N):
            raise UserError(
                f"ImageSet has {len(self.images_NCHW)} images but {len(self.labels_N)} labels"
            )
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(name) for name in self.class_names))
            if len(self.labels_N) and int(self.labels_N.max()) >= len(self.class_names):
                raise UserError(f"ImageSet has a label {int(self.labels_N.max())} but only {len(self.class_names)} "
                                f"class names {list(self.class_names)}; name every class 0..K-1")
        if self.files is not None:
            object.__setattr__(self, "files", tuple(self.files))
            if len(self.files) != len(self.labels_N):
                raise UserError(f"ImageSet has {len(self.labels_N)} images but {len(self.files)} files")

    def __len__(self) -> int:
        return len(self.labels_N)

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, "0".."K-1" (K = the largest label + 1) when none were given."""
        if self.class_names is not None:
            return self.class_names
        return tuple(str(k) for k in range(int(self.labels_N.max()) + 1 if len(self.labels_N) else 0))

    def __repr__(self) -> str:
        n, c, h, w = self.images_NCHW.shape
        shown = ", ".join(self.classes[:4]) + (", ..." if len(self.classes) > 4 else "")
        name = f", {self.name!r}" if self.name else ""
        device = "" if self.images_NCHW.device.type == "cpu" else f", {self.images_NCHW.device}"
        return f"ImageSet({n} images {c}x{h}x{w} uint8, {len(self.classes)} classes ({shown}){name}{device})"

    def subset(self, index_M: torch.Tensor) -> ImageSet:
        """The M images/labels at ``index_M`` (int64 [M] or bool [N]), with the same class names and name."""
        files = None
        if self.files is not None:
            positions = torch.arange(len(self))[torch.as_tensor(index_M).cpu()].tolist()
            files = [self.files[i] for i in (positions if isinstance(positions, list) else [positions])]
        return replace(self, images_NCHW=self.images_NCHW[index_M], labels_N=self.labels_N[index_M], files=files)

    def to(self, device) -> ImageSet:
        """Both tensors moved to ``device``."""
        return replace(self, images_NCHW=self.images_NCHW.to(device), labels_N=self.labels_N.to(device))


def _corrupt(path: Path, problem: str) -> DataError:
    return DataError(
        f"{path}: {problem}. Fix: delete this file and download it again "
        f"(files in the cache are re-downloaded automatically), or point --data-dir / "
        f"{ENV_VAR} at a directory with intact files."
    )


def read_idx(path: str | Path) -> torch.Tensor:
    """The array stored in an IDX file (gzipped if the name ends in .gz), as a writable tensor of its dims."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except PermissionError:
        raise DataError(f"{path}: permission denied; make it readable (chmod +r) or copy the data set where you "
                        "can read it") from None
    except (OSError, EOFError, zlib.error) as e:
        raise _corrupt(path, f"cannot be read ({type(e).__name__}: {e})") from e

    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        magic = raw[:4].hex() or "empty"
        raise _corrupt(path, f"not an IDX file (bad magic {magic}, expected 0000<type><ndim>)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise _corrupt(path, f"unsupported IDX type code 0x{code:02x}")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise _corrupt(path, f"header truncated ({len(raw)} bytes, {ndim} dims need {header_len})")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header_len != expected:
        raise _corrupt(
            path,
            f"payload is {len(raw) - header_len} bytes but dims {dims} need {expected}",
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(dims)
    return torch.from_numpy(array.astype(dtype.newbyteorder("=")))


def _find(directory: Path, name: str) -> Path | None:
    """``directory/name``, or the same name without ``.gz``, whichever exists first; else None."""
    for candidate in (directory / name, directory / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _missing(directory: Path) -> list[str]:
    """The MNIST file names absent (gzipped or not) from ``directory``."""
    return [name for name in _ALL_FILES if _find(directory, name) is None]


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/gan-acquire/mnist`` (``~/.cache/gan-acquire/mnist`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gan-acquire" / "mnist"


def _fetch_url(url: str) -> bytes:
    """The body at ``url`` (raises OSError / HTTPException on failure)."""
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        return response.read()


def _download(name: str, directory: Path) -> list[str]:
    """Fetch ``name`` into ``directory`` from the first mirror serving the official md5.

    Returns [] on success, else one "url: reason" line per mirror tried.
    """
    failures = []
    for mirror in MIRRORS:
        url = mirror + name
        print(f"Downloading {url} -> {directory}", file=sys.stderr, flush=True)
        tmp = None
        try:
            payload = _fetch_url(url)
            with tempfile.NamedTemporaryFile(
                dir=directory, prefix=f"{name}.", suffix=".part", delete=False
            ) as f:
                tmp = Path(f.name)
                f.write(payload)
            md5 = hashlib.md5(payload).hexdigest()
            if md5 != MNIST_MD5[name]:
                failures.append(f"{url}: md5 {md5} != expected {MNIST_MD5[name]}")
                continue
            tmp.replace(directory / name)
            tmp = None
            return []
        except (OSError, http.client.HTTPException, ValueError) as e:
            failures.append(f"{url}: {type(e).__name__}: {e}")
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    return failures


def _fill_cache(cache: Path) -> list[str]:
    """Download the files missing from ``cache``; [] on success, else lines saying what failed."""
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return [f"cannot create the cache directory: {e}"]
    for name in _missing(cache):
        failures = _download(name, cache)
        if failures:
            return [f"could not download {name}:"] + [f"  {line}" for line in failures]
    return []


def _not_found(looked: list[str], download_report: list[str]) -> DataError:
    names = ", ".join(_ALL_FILES)
    lines = ["No data set found. Looked in:"]
    lines += [f"  - {place}" for place in looked]
    lines += download_report
    lines += [
        f"A data set is a directory holding {names} (the names without .gz also work), an .npz file ({NPZ_HELP}) "
        f"or a folder of images ({FOLDER_HELP}).",
        "Fix it in one of three ways:",
        "  1. pass --data-dir DIR (data_dir=DIR) with DIR holding those files;",
        f"  2. export {ENV_VAR}=DIR;",
        "  3. connect to the internet and rerun, so the cache above fills by itself.",
    ]
    return DataError("\n".join(lines))


def _describe(label: str, directory: Path) -> str:
    if directory.is_dir() and not any(directory.iterdir()):
        return f"{label} {directory} (an empty folder)"
    if directory.exists() and not directory.is_dir():
        return f"{label} {directory} (a file, not a directory or an .npz file)"
    return f"{label} {directory} (missing: {', '.join(_missing(directory))})"


def resolve_data_dir(
    data_dir: str | Path | None = None, *, download: bool = True, cache_dir: Path | None = None
) -> Path:
    """The data set to load (see `data_format`): ``data_dir``, else ``$GAN_ACQUIRE_DATA``, else the MNIST cache.

    An explicit ``data_dir`` that is no data set is an error (no fallthrough). The cache (``cache_dir``
    or :func:`default_cache_dir`) is filled from :data:`MIRRORS` when ``download`` is true.
    """
    if data_dir is not None:
        explicit = Path(data_dir).expanduser()
        if data_format(explicit):
            return explicit
        raise _not_found([_describe("data_dir / --data-dir", explicit)], [])

    looked = []
    env_value = os.environ.get(ENV_VAR)
    if env_value:
        env_dir = Path(env_value).expanduser()
        if data_format(env_dir):
            return env_dir
        looked.append(_describe(f"${ENV_VAR} =", env_dir))
        warnings.warn(f"{looked[-1]}; falling back to the cache", stacklevel=2)
    else:
        looked.append(f"${ENV_VAR}: not set")

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if not _missing(cache):
        return cache
    looked.append(_describe("cache", cache))
    if not download:
        raise _not_found(looked, ["Download: disabled (download=False)."])
    report = _fill_cache(cache)
    if report:
        raise _not_found(looked, ["Download from the mirrors failed:"] + [f"  {line}" for line in report])
    return cache


def _check_md5(path: Path) -> None:
    expected = MNIST_MD5.get(path.name)
    if expected is None:
        raise DataError(
            f"{path}: cannot verify md5, the official checksums are for the .gz files; "
            "use the .gz files or pass verify_md5=False."
        )
    actual = hashlib.md5(path.read_bytes()).hexdigest()
    if actual != expected:
        raise DataError(
            f"{path}: md5 {actual} != official MNIST md5 {expected}. If this is another "
            "MNIST-format data set (e.g. Fashion-MNIST) pass verify_md5=False; otherwise delete "
            "the file and download it again."
        )


def data_format(path: str | Path) -> str | None:
    """What `path` holds: "npz" (an .npz file), "idx" (the four MNIST-named IDX files), "image-splits" (train/<class>/
    beside test/<class>/), "image-classes" (one folder per class), or None."""
    path = Path(path)
    if path.is_file():
        return "npz" if path.suffix == ".npz" else None
    if not path.is_dir():
        return None
    if not _missing(path):
        return "idx"
    from acquire.image_folder import folder_layout  # Pillow is imported only when a folder is read

    return folder_layout(path)


def dataset_name(path: str | Path) -> str:
    """The name of the data set at `path` for titles and figures: its directory's name, an .npz file's stem."""
    path = Path(path)
    return path.stem if path.suffix == ".npz" else path.name


def load_split(
    split: str, data_dir: str | Path | None = None, *, download: bool = True, verify_md5: bool = False,
    test_fraction: float = TEST_FRACTION, split_seed: int = SPLIT_SEED,
) -> ImageSet:
    """The ``"train"`` or ``"test"`` split of :func:`resolve_data_dir`'s data set: images uint8 [N,C,H,W], labels
    int64 [N]. A data set with no test split of its own (an .npz of x, y; one folder per class) is split by
    `stratified_split` (test_fraction, split_seed); the ImageSet's files say which images went where."""
    if split not in MNIST_FILES:
        raise UserError(f"split must be one of {sorted(MNIST_FILES)}, got {split!r}")
    path = resolve_data_dir(data_dir, download=download)
    form = data_format(path)
    if form == "npz":
        return load_npz(path, split, test_fraction=test_fraction, split_seed=split_seed)
    if form != "idx":
        from acquire.image_folder import load_image_folder

        return load_image_folder(path, split, test_fraction=test_fraction, split_seed=split_seed)
    return _load_idx_split(path, split, verify_md5)


def _load_idx_split(directory: Path, split: str, verify_md5: bool) -> ImageSet:
    """The split of an IDX directory: images [N,H,W], [N,C,H,W] or [N,H,W,C] with C 1 or 3, labels [N]."""
    image_path, label_path = (_find(directory, name) for name in MNIST_FILES[split])
    if verify_md5:
        _check_md5(image_path)
        _check_md5(label_path)
    images = read_idx(image_path)
    labels_N = read_idx(label_path)
    if images.dtype != torch.uint8:
        raise DataError(f"{image_path} holds {images.dtype} images {list(images.shape)}; an IDX images file must hold "
                        "uint8 pixels (type code 0x08)")
    if images.dim() == 3:
        images = images.unsqueeze(1)
    elif images.dim() == 4 and images.shape[1] not in (1, 3) and images.shape[3] in (1, 3):
        images = images.permute(0, 3, 1, 2).contiguous()  # channels-last [N,H,W,C]
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise DataError(f"{image_path} holds images of shape {list(images.shape)}; an IDX images file must be "
                        "[N,H,W], [N,C,H,W] or [N,H,W,C] with C = 1 or 3 channels")
    if labels_N.dim() != 1 or labels_N.is_floating_point():
        got = f"{labels_N.dtype} {list(labels_N.shape)}"
        raise _corrupt(label_path, f"expected integer labels [N], got {got}")
    if len(images) != len(labels_N):
        raise DataError(
            f"{image_path} holds {len(images)} images but {label_path} holds {len(labels_N)} "
            "labels. Fix: the two files come from different data sets or one is damaged; "
            "replace both with a matching pair (delete and download again)."
        )
    if len(labels_N) and int(labels_N.min()) == 1:  # judged over both splits: one may lack class 0 by chance
        other = read_idx(_find(directory, MNIST_FILES["test" if split == "train" else "train"][1]))
        try:
            _refuse_labels_from_one(torch.cat([labels_N.long(), other.long().flatten()]))
        except UserError as error:
            raise DataError(f"{label_path}: {error}") from None
    return ImageSet(images, labels_N.long(), name=directory.name)


def load_train_test(data_dir: str | Path | None = None) -> tuple[ImageSet, ImageSet, str]:
    """The train and test splits of :func:`resolve_data_dir`'s data set and its name (`dataset_name`, e.g.
    "mnist"), for titles and configs."""
    path = resolve_data_dir(data_dir)
    return load_split("train", path), load_split("test", path), dataset_name(path)


def stratified_split(labels_N: torch.Tensor, test_fraction: float = TEST_FRACTION, seed: int = SPLIT_SEED,
                     classes: tuple[str, ...] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions train [N_train] and test [N_test] (each in ascending order) of a seeded split that puts
    round(test_fraction * n_k) of each class's n_k images (at least 1, at most n_k - 1) in the test set."""
    if not 0 < test_fraction < 1:
        raise UserError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    labels_N = labels_N.cpu()
    if not len(labels_N):
        raise DataError("a data set with no images cannot be split; give it images")
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for k in labels_N.unique().tolist():
        members = (labels_N == k).nonzero().squeeze(1)
        if len(members) < 2:
            name = classes[k] if classes else str(k)
            raise DataError(f"class {name!r} has 1 image; a test split needs at least 2 of each class: add images, or "
                            "give a test split of your own")
        shuffled = members[torch.randperm(len(members), generator=generator)]
        cut = min(max(1, round(test_fraction * len(members))), len(members) - 1)
        test.append(shuffled[:cut])
        train.append(shuffled[cut:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def as_image_set(images, labels, *, class_names=None, name: str | None = None, channels_last: bool = False
                 ) -> ImageSet:
    """An ImageSet (on the CPU) from NumPy arrays or tensors: images [N,H,W] or [N,C,H,W] ([N,H,W,C] with
    channels_last=True), uint8 (or integers in 0..255) or float in [0, 1] (rounded to the nearest of 256 levels);
    labels [N], integer classes 0..K-1; class_names (optional) name the K classes, name the data set."""
    images_NCHW, labels_N = _converted(images, labels, channels_last)
    if class_names is None and len(labels_N):
        _refuse_labels_from_one(labels_N)
    return ImageSet(images_NCHW, labels_N, class_names=class_names, name=name)


def _refuse_labels_from_one(labels_N: torch.Tensor) -> None:
    """Refuse labels 1..K (no 0) given without class names: the default model would get an unused class 0."""
    if int(labels_N.min()) == 1:
        raise UserError(f"labels run 1..{int(labels_N.max())} with no label 0, which would add an unused class 0; "
                        "subtract 1 (y - 1), or pass class_names naming every class 0..K-1 if class 0 is real")


def _converted(images, labels, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """as_image_set's images uint8 [N,C,H,W] and labels int64 [N], checked."""
    images = _as_tensor(images)
    labels = _as_tensor(labels)
    if images.dim() == 3:
        images = images.unsqueeze(1 if not channels_last else 3)
    if images.dim() != 4:
        raise UserError(f"images must be [N,H,W] or [N,C,H,W], got shape {list(images.shape)}")
    if channels_last:
        images = images.permute(0, 3, 1, 2)
    elif images.shape[3] in (1, 3) and min(images.shape[1], images.shape[2]) > images.shape[3]:
        raise UserError(f"images of shape {list(images.shape)} look channels-last [N,H,W,C]; pass channels_last=True "
                        "(or give x.transpose(0, 3, 1, 2)), as images must be [N,C,H,W]")
    if images.is_floating_point():
        if images.isnan().any():
            raise UserError("images contain NaN; replace or drop those images (numpy.isnan(x) finds them)")
        low, high = (images.min().item(), images.max().item()) if images.numel() else (0.0, 0.0)
        if not (0.0 <= low and high <= 1.0):
            raise UserError(f"float images must lie in [0, 1], got values from {low} to {high}; divide 0..255 "
                             "pixels by 255, or give them as uint8")
        images = images.double().mul(255).round().to(torch.uint8)
    elif images.dtype != torch.uint8:
        if images.dtype == torch.bool or images.is_complex():
            raise UserError(f"images must be uint8 or float in [0, 1], got {images.dtype}")
        if not images.is_signed():
            raise UserError(f"images of dtype {images.dtype} are not read; convert them to uint8 (0..255), or to "
                            "float in [0, 1] (e.g. x / 65535 for 16-bit images)")
        if images.numel() and (images.min() < 0 or images.max() > 255):
            raise UserError(f"integer images must lie in 0..255, got values from {int(images.min())} to "
                             f"{int(images.max())}; give uint8 pixels or floats in [0, 1]")
        images = images.to(torch.uint8)
    if labels.dim() == 2 and labels.shape[1] > 1:
        raise UserError(f"labels must be class indices [N], not one-hot [N,K] = {list(labels.shape)}; use y.argmax(1)")
    if labels.dim() != 1:
        raise UserError(f"labels must be a 1-D array [N] of class indices, got shape {list(labels.shape)}; "
                         "use y.ravel()")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise UserError(f"labels must be integer class indices 0..K-1, got {labels.dtype}; use y.astype(int)")
    if len(labels) and int(labels.min()) < 0:
        raise UserError(f"labels must be class indices 0..K-1, got a label {int(labels.min())}")
    return images.contiguous(), labels.long()


def _as_tensor(array) -> torch.Tensor:
    """A CPU tensor of a NumPy array, tensor or nested list (NumPy arrays copied so they may be any strides)."""
    if isinstance(array, torch.Tensor):
        return array.detach().cpu()
    return torch.from_numpy(np.array(array))


def load_npz(path: str | Path, split: str | None = None, *, test_fraction: float = TEST_FRACTION,
             split_seed: int = SPLIT_SEED) -> ImageSet:
    """A NumPy ``.npz`` file's images and labels: arrays ``x_<split>`` and ``y_<split>`` (``x_train``, ``y_train``,
    ``x_test``, ``y_test``), or ``x`` and ``y`` when split is None or the file has no such split (then split by
    `stratified_split`); x [N,H,W] or [N,C,H,W], y [N] (see as_image_set); an optional ``class_names`` array names
    the classes."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist (or is not a file); give the path of an .npz data set")
    try:
        with np.load(path, allow_pickle=False) as archive:
            keys = ("x", "y") if split is None else (f"x_{split}", f"y_{split}")
            if split is not None and not set(keys) <= set(archive.files) and {"x", "y"} <= set(archive.files):
                keys = ("x", "y")
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise DataError(f"{path} has no array(s) {missing} (it holds {sorted(archive.files)}); an .npz data "
                                f"set needs {NPZ_HELP}")
            x, y = archive[keys[0]], archive[keys[1]]
            all_labels = [archive[key] for key in archive.files if key == "y" or key.startswith("y_")]
            class_names = archive["class_names"].tolist() if "class_names" in archive.files else None
    except (OSError, ValueError, zlib.error) as error:
        raise DataError(f"{path} cannot be read as an .npz file ({error}); save it with numpy.savez") from None
    try:
        images_NCHW, labels_N = _converted(x, y, channels_last=False)
        if class_names is None and len(labels_N):  # over every split: one split may lack class 0 by chance
            every_label = np.concatenate([np.ravel(labels) for labels in all_labels]).astype(np.int64)
            _refuse_labels_from_one(torch.from_numpy(every_label))
        whole = ImageSet(images_NCHW, labels_N, class_names=class_names, name=dataset_name(path))
    except UserError as error:
        raise DataError(f"{path}: {error}") from None
    if split is None or keys == (f"x_{split}", f"y_{split}"):
        return whole
    whole = replace(whole, files=[f"x[{i}]" for i in range(len(whole))])
    train_index, test_index = stratified_split(whole.labels_N, test_fraction, split_seed, whole.class_names)
    return whole.subset(train_index if split == "train" else test_index)


def load_dataset(path: str | Path, split: str) -> ImageSet:
    """The ``"train"`` or ``"test"`` split of the data set at `path` (any format of `data_format`; see load_split)."""
    return load_split(split, path)


def class_balanced_indices(labels_N: torch.Tensor, n: int | Sequence[int], rng: torch.Generator | int,
                           num_classes: int | None = None) -> torch.Tensor:
    """Positions into labels_N, drawn at random without replacement: n // K of each of the K classes for an int n (a
    multiple of K), or n[k] of class k for a list n. rng: a torch.Generator on any device (drawn from in class
    order, there) or an int seed. K: num_classes, else len(n) for a list, else the largest label + 1."""
    labels_N = labels_N.cpu()
    if num_classes is None:
        num_classes = len(n) if not isinstance(n, int) else int(labels_N.max()) + 1 if len(labels_N) else 0
    if isinstance(n, int):
        if n <= 0 or num_classes <= 0 or n % num_classes:
            raise UserError(f"a class-balanced subset needs a positive multiple of {num_classes} images, got {n}")
        counts = [n // num_classes] * num_classes
    else:
        counts = [int(count) for count in n]
        if len(counts) != num_classes or min(counts, default=-1) < 0:
            raise UserError(f"per-class counts must be {num_classes} numbers >= 0, one per class, got {list(n)}")
    if isinstance(rng, int):
        rng = torch.Generator().manual_seed(rng)
    chosen = []
    for c, count in enumerate(counts):
        members = (labels_N == c).nonzero().squeeze(1)
        if len(members) < count:
            raise UserError(f"{sum(counts)} class-balanced images need {count} of class {c}; only {len(members)} "
                            "exist")
        order = torch.randperm(len(members), generator=rng, device=rng.device).cpu()
        chosen.append(members[order[:count]])
    return torch.cat(chosen)


def class_balanced_at_most(labels_N: torch.Tensor, per_class: int, rng: torch.Generator | int,
                           num_classes: int) -> torch.Tensor:
    """class_balanced_indices of min(per_class, the smallest class's count) images of each of the K classes."""
    smallest = int(torch.bincount(labels_N.cpu(), minlength=num_classes).min())
    return class_balanced_indices(labels_N, min(per_class, smallest) * num_classes, rng, num_classes)

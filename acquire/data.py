"""Labelled images: the `ImageSet` type, and loading one from arrays, `.npz` files or MNIST-format IDX directories.

IDX directories: where the files come from, in order: an explicit ``data_dir`` (``--data-dir``), the directory in
``$GAN_ACQUIRE_DATA``, then a per-user cache (``$XDG_CACHE_HOME/gan-acquire/mnist``) that is filled
from public mirrors on first use. Any directory holding the four MNIST-named IDX files loads, so
Fashion-MNIST (same file names) works too. `.npz` files hold ``x_train, y_train, x_test, y_test`` (or ``x, y``);
arrays and tensors of any N×C×H×W shape and any number of classes go through `as_image_set`.
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
from dataclasses import dataclass
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


class DataError(UserError):
    """Data missing, corrupt or malformed; the message names the file/dirs and the fix."""


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Labelled images: ``images_NCHW`` uint8 [N,C,H,W] (MNIST: [N,1,28,28]), ``labels_N`` int64 [N]."""

    images_NCHW: torch.Tensor
    labels_N: torch.Tensor

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

    def __len__(self) -> int:
        return len(self.labels_N)

    def subset(self, index_M: torch.Tensor) -> ImageSet:
        """The M images/labels at ``index_M`` (int64 [M] or bool [N])."""
        return ImageSet(self.images_NCHW[index_M], self.labels_N[index_M])

    def to(self, device) -> ImageSet:
        """Both tensors moved to ``device``."""
        return ImageSet(self.images_NCHW.to(device), self.labels_N.to(device))


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
    lines = ["MNIST data not found. Looked in:"]
    lines += [f"  - {place}" for place in looked]
    lines += download_report
    lines += [
        f"A data directory must hold {names} (the names without .gz also work).",
        "Fix it in one of three ways:",
        "  1. pass --data-dir DIR (data_dir=DIR) with DIR holding those files;",
        f"  2. export {ENV_VAR}=DIR;",
        "  3. connect to the internet and rerun, so the cache above fills by itself.",
    ]
    return DataError("\n".join(lines))


def _describe(label: str, directory: Path) -> str:
    return f"{label} {directory} (missing: {', '.join(_missing(directory))})"


def resolve_data_dir(
    data_dir: str | Path | None = None, *, download: bool = True, cache_dir: Path | None = None
) -> Path:
    """The directory holding the four MNIST files: ``data_dir``, else ``$GAN_ACQUIRE_DATA``, else the cache.

    An explicit ``data_dir`` lacking the files is an error (no fallthrough). The cache (``cache_dir``
    or :func:`default_cache_dir`) is filled from :data:`MIRRORS` when ``download`` is true.
    """
    if data_dir is not None:
        explicit = Path(data_dir).expanduser()
        if not _missing(explicit):
            return explicit
        raise _not_found([_describe("data_dir / --data-dir", explicit)], [])

    looked = []
    env_value = os.environ.get(ENV_VAR)
    if env_value:
        env_dir = Path(env_value).expanduser()
        if not _missing(env_dir):
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


def load_split(
    split: str, data_dir: str | Path | None = None, *, download: bool = True, verify_md5: bool = False
) -> ImageSet:
    """The ``"train"`` or ``"test"`` split: images uint8 [N,1,H,W], labels int64 [N]."""
    if split not in MNIST_FILES:
        raise UserError(f"split must be one of {sorted(MNIST_FILES)}, got {split!r}")
    directory = resolve_data_dir(data_dir, download=download)
    image_path, label_path = (_find(directory, name) for name in MNIST_FILES[split])
    if verify_md5:
        _check_md5(image_path)
        _check_md5(label_path)
    images_NHW = read_idx(image_path)
    labels_N = read_idx(label_path)
    if images_NHW.dim() != 3 or images_NHW.dtype != torch.uint8:
        got = f"{images_NHW.dtype} {list(images_NHW.shape)}"
        raise _corrupt(image_path, f"expected uint8 images [N,H,W], got {got}")
    if labels_N.dim() != 1 or labels_N.is_floating_point():
        got = f"{labels_N.dtype} {list(labels_N.shape)}"
        raise _corrupt(label_path, f"expected integer labels [N], got {got}")
    if len(images_NHW) != len(labels_N):
        raise DataError(
            f"{image_path} holds {len(images_NHW)} images but {label_path} holds {len(labels_N)} "
            "labels. Fix: the two files come from different data sets or one is damaged; "
            "replace both with a matching pair (delete and download again)."
        )
    return ImageSet(images_NHW.unsqueeze(1), labels_N.long())


def load_train_test(data_dir: str | Path | None = None) -> tuple[ImageSet, ImageSet, str]:
    """The train and test splits of :func:`resolve_data_dir`'s directory and the data set's name (that
    directory's name, e.g. "mnist"), for titles and configs."""
    directory = resolve_data_dir(data_dir)
    return load_split("train", directory), load_split("test", directory), directory.name


def as_image_set(images, labels) -> ImageSet:
    """An ImageSet (on the CPU) from NumPy arrays or tensors: images [N,H,W] or [N,C,H,W], uint8 (or integers in
    0..255) or float in [0, 1] (rounded to the nearest of 256 levels); labels [N], integer classes 0..K-1."""
    images = _as_tensor(images)
    labels = _as_tensor(labels)
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4:
        raise UserError(f"images must be [N,H,W] or [N,C,H,W], got shape {list(images.shape)}; "
                         "channels-last arrays [N,H,W,C] need x.transpose(0, 3, 1, 2)")
    if images.is_floating_point():
        low, high = (images.min().item(), images.max().item()) if images.numel() else (0.0, 0.0)
        if not (0.0 <= low and high <= 1.0):  # also catches NaN
            raise UserError(f"float images must lie in [0, 1], got values from {low} to {high}; divide 0..255 "
                             "pixels by 255, or give them as uint8")
        images = images.double().mul(255).round().to(torch.uint8)
    elif images.dtype != torch.uint8:
        if images.dtype == torch.bool or images.is_complex():
            raise UserError(f"images must be uint8 or float in [0, 1], got {images.dtype}")
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
    return ImageSet(images.contiguous(), labels.long())


def _as_tensor(array) -> torch.Tensor:
    """A CPU tensor of a NumPy array, tensor or nested list (NumPy arrays copied so they may be any strides)."""
    if isinstance(array, torch.Tensor):
        return array.detach().cpu()
    return torch.from_numpy(np.array(array))


def load_npz(path: str | Path, split: str | None = None) -> ImageSet:
    """A NumPy ``.npz`` file's images and labels: arrays ``x_<split>`` and ``y_<split>`` (``x_train``, ``y_train``,
    ``x_test``, ``y_test``), or ``x`` and ``y`` when split is None; x [N,H,W] or [N,C,H,W], y [N] (see as_image_set)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist (or is not a file); give the path of an .npz data set")
    keys = ("x", "y") if split is None else (f"x_{split}", f"y_{split}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [key for key in keys if key not in archive.files]
            if missing:
                raise DataError(f"{path} has no array(s) {missing} (it holds {sorted(archive.files)}); an .npz data "
                                "set needs x_train, y_train, x_test, y_test (or x, y for a single set)")
            x, y = archive[keys[0]], archive[keys[1]]
    except (OSError, ValueError, zlib.error) as error:
        raise DataError(f"{path} cannot be read as an .npz file ({error}); save it with numpy.savez") from None
    try:
        return as_image_set(x, y)
    except ValueError as error:
        raise DataError(f"{path}: {error}") from None


def load_dataset(path: str | Path, split: str) -> ImageSet:
    """The ``"train"`` or ``"test"`` split of the data set at `path`: an ``.npz`` file (load_npz) or a directory of
    MNIST-format IDX files (load_split)."""
    if Path(path).suffix == ".npz":
        return load_npz(path, split)
    return load_split(split, path)


def class_balanced_indices(labels_N: torch.Tensor, n: int, generator: torch.Generator,
                           num_classes: int = 10) -> torch.Tensor:
    """n positions [n] into labels_N, n/num_classes of each class, drawn at random without replacement."""
    if n <= 0 or n % num_classes:
        raise UserError(f"a class-balanced subset needs a positive multiple of {num_classes} images, got {n}")
    labels_N = labels_N.cpu()
    chosen = []
    for c in range(num_classes):
        members = (labels_N == c).nonzero().squeeze(1)
        if len(members) < n // num_classes:
            raise UserError(f"{n} class-balanced images need {n // num_classes} of class {c}; only {len(members)} exist")
        chosen.append(members[torch.randperm(len(members), generator=generator)[: n // num_classes]])
    return torch.cat(chosen)

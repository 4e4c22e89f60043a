"""Shared fixtures: tiny slices of the real MNIST and Fashion-MNIST kept beside the project (../shared/data).

Every test that uses the real data files (through `mnist_dir` or `fashion_dir`, directly or via another fixture) is
marked `real_data` and skips when the files are absent; `python -m pytest -m "not real_data"` runs the rest.
"""

import os
from pathlib import Path

import pytest
import torch

from acquire.data import ImageSet, load_split

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REAL_MNIST = Path(os.environ.get("GAN_ACQUIRE_DATA") or SHARED_DATA / "mnist")
REAL_FASHION = SHARED_DATA / "fashion-mnist"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    if not REAL_MNIST.is_dir():
        pytest.skip(f"real MNIST not found at {REAL_MNIST}; set GAN_ACQUIRE_DATA to an MNIST directory")
    return REAL_MNIST


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    if not REAL_FASHION.is_dir():
        pytest.skip(f"real Fashion-MNIST not found at {REAL_FASHION}")
    return REAL_FASHION


@pytest.fixture(scope="session")
def mnist_test(mnist_dir) -> ImageSet:
    return load_split("test", mnist_dir)


@pytest.fixture(scope="session")
def tiny_train(mnist_dir) -> ImageSet:
    """The first 400 real training images."""
    return load_split("train", mnist_dir).subset(torch.arange(400))


@pytest.fixture(scope="session")
def tiny_test(mnist_test) -> ImageSet:
    """The first 300 real test images."""
    return mnist_test.subset(torch.arange(300))


@pytest.fixture(scope="session")
def mnist_slice_dir(tmp_path_factory, mnist_dir) -> Path:
    """An MNIST directory of the first 1,000 real training and 300 real test images (fast runner tests)."""
    from tests.mnist_slices import write_mnist_slice
    return write_mnist_slice(tmp_path_factory.mktemp("mnist_slice"), mnist_dir, train=1000, test=300)


@pytest.fixture
def one_thread():
    """Tiny tensors: one torch thread is fastest, spares the shared CPU and makes the numbers reproducible."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gan_images(tiny_train):
    """The first 128 real training images: enough for a few GAN steps."""
    return tiny_train.subset(torch.arange(128))


def pytest_collection_modifyitems(items):
    for item in items:
        if {"mnist_dir", "fashion_dir"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_data)

"""Device placement, checked without a GPU: the 'meta' device stands in for CUDA (any op that mixes a meta tensor
with a CPU one fails, as CPU with CUDA does), and the CUDA RNG must never be touched by CPU-side seeding."""

import pytest
import torch

from acquire.data import ImageSet
from acquire.loop import ActiveLearningRun
from acquire.pool import CandidatePool
from tests.acquire.loop.test_loop import tiny_config


@pytest.fixture
def images():
    generator = torch.Generator().manual_seed(0)
    return ImageSet(torch.randint(0, 256, (40, 1, 28, 28), dtype=torch.uint8, generator=generator),
                    torch.randint(0, 10, (40,), generator=generator))


def test_a_pool_joins_its_sources_then_lives_wholly_on_the_run_device(images):
    pool = CandidatePool({"raw": images, "gan": images.subset(range(10))}, device="meta")
    for tensor in (pool.images_NCHW, pool.labels_N, pool.source_N, pool._available_N):
        assert tensor.device.type == "meta"
    assert pool.fingerprint["gan"]["images"] == 10


def test_a_run_refuses_pools_on_another_device(images, tmp_path):
    with pytest.raises(ValueError, match="lives on cpu but the run on meta"):
        ActiveLearningRun(tiny_config(), {"raw": CandidatePool({"raw": images})}, images, tmp_path, device="meta")
    assert not tmp_path.joinpath("config.json").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_run_on_cuda_accepts_a_pool_built_on_cuda(images, tmp_path):
    pool = CandidatePool({"raw": images}, device="cuda")
    with ActiveLearningRun(tiny_config(), {"raw": pool}, images.to("cuda"), tmp_path, device="cuda") as run:
        assert run.device == pool.device

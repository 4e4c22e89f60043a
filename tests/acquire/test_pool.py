"""The candidate pool keeps sources apart and never hands out a candidate twice."""

import pytest
import torch

from acquire.data import ImageSet
from acquire.pool import CandidatePool


def image_set(n, label):
    return ImageSet(torch.full((n, 1, 28, 28), label, dtype=torch.uint8), torch.full((n,), label, dtype=torch.long))


@pytest.fixture
def pool():
    return CandidatePool({"raw": image_set(5, 1), "pggan": image_set(3, 2)})


def test_sources_are_concatenated_in_order(pool):
    assert len(pool) == 8 and pool.source_names == ["raw", "pggan"]
    assert pool.source_N.tolist() == [0] * 5 + [1] * 3
    assert pool.labels_N.tolist() == [1] * 5 + [2] * 3


def test_acquired_candidates_leave_the_pool_and_are_recorded_by_round(pool):
    pool.acquire(torch.tensor([6, 0]))
    pool.acquire(torch.tensor([2]))
    assert pool.available_index().tolist() == [1, 3, 4, 5, 7]
    assert [r.tolist() for r in pool.rounds] == [[6, 0], [2]]
    assert pool.counts_by_source() == {"raw": 2, "pggan": 1}
    training = pool.training_set()
    assert training.labels_N.tolist() == [2, 1, 1] and training.images_NCHW.dtype == torch.uint8


def test_fresh_pools_share_images_but_not_state(pool):
    pool.acquire(torch.tensor([0]))
    other = pool.fresh()
    assert other.num_available == 8 and pool.num_available == 7
    assert other.images_NCHW.data_ptr() == pool.images_NCHW.data_ptr()


def test_errors(pool):
    pool.acquire(torch.tensor([0]))
    with pytest.raises(ValueError, match="already acquired"):
        pool.acquire(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="repeat"):
        pool.acquire(torch.tensor([2, 2]))
    with pytest.raises(ValueError, match="holds only 7"):
        pool.acquire(torch.arange(1, 9))
    with pytest.raises(ValueError, match="at least one source"):
        CandidatePool({})


def test_sources_of_any_one_image_shape_join_and_mixed_shapes_are_refused():
    colour = ImageSet(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), torch.arange(4))
    pool = CandidatePool({"raw": colour, "more": colour.subset(torch.arange(2))})
    assert pool.images_NCHW.shape == (6, 3, 32, 32) and pool.fingerprint["more"]["images"] == 2
    with pytest.raises(ValueError, match=r"same image shape \[C,H,W\]"):
        CandidatePool({"raw": colour, "grey": image_set(2, 1)})


def test_repr_summarises_the_pool(pool):
    pool.acquire(torch.tensor([0, 6]))
    assert repr(pool) == "CandidatePool(8 candidates [1, 28, 28] from raw=5, pggan=3; 2 acquired, on cpu)"


def test_images_digest_names_the_images_not_the_indices(pool):
    assert pool.images_digest(torch.tensor([0])) == pool.images_digest(torch.tensor([1]))  # identical images
    assert pool.images_digest(torch.tensor([0])) != pool.images_digest(torch.tensor([5]))

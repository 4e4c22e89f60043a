import pytest
import torch

from acquire.data import ImageSet
from acquire.errors import UserError
from gans.subset import (indices_sha256, labelled_subset, read_subset_record, subset_record, unseen_indices,
                         write_subset_record)


def labelled(counts, shape=(3, 6, 9)):
    labels = torch.cat([torch.full((n,), c, dtype=torch.int64) for c, n in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))]
    images = torch.arange(len(labels) * 162, dtype=torch.int64).remainder(256).to(torch.uint8).view(-1, *shape)
    return ImageSet(images, labels)


def test_subset_is_balanced_seeded_and_records_its_positions():
    images = labelled([30, 12, 25, 40])
    subset, indices = labelled_subset(images, per_class=10, seed=3)
    assert len(subset) == 40 and torch.equal(torch.bincount(subset.labels_N), torch.full((4,), 10))
    assert torch.equal(subset.images_NCHW, images.images_NCHW[indices]) and len(set(indices.tolist())) == 40
    again, same = labelled_subset(images, per_class=10, seed=3)
    assert torch.equal(indices, same) and torch.equal(again.images_NCHW, subset.images_NCHW)
    assert not torch.equal(labelled_subset(images, per_class=10, seed=4)[1], indices)


def test_refuses_more_per_class_than_the_smallest_class_has():
    with pytest.raises(UserError, match="class 1 has only 12 labelled images; ask for at most 12"):
        labelled_subset(labelled([30, 12, 25]), per_class=13, seed=0)
    with pytest.raises(UserError, match="class 1 has only 0"):
        labelled_subset(labelled([30, 0, 25]), per_class=1, seed=0)
    with pytest.raises(UserError, match="positive integer"):
        labelled_subset(labelled([30, 12]), per_class=0, seed=0)
    assert len(labelled_subset(labelled([30, 12, 25]), per_class=12, seed=0)[0]) == 36


def test_record_round_trips_and_gives_the_disjoint_unseen_rest(tmp_path):
    images = labelled([20, 15, 18])
    _, indices = labelled_subset(images, per_class=5, seed=1)
    record = subset_record(images, 5, 1, indices)
    path = write_subset_record(tmp_path / "subset.json", record)
    assert read_subset_record(path) == record and record["count"] == 15
    unseen = unseen_indices(images, read_subset_record(path))
    assert len(unseen) == len(images) - 15 and not set(unseen.tolist()) & set(indices.tolist())
    assert sorted(unseen.tolist() + indices.tolist()) == list(range(len(images)))
    assert record["indices_sha256"] == indices_sha256(indices) != indices_sha256(indices.flip(0))


def test_unseen_indices_refuses_other_data_or_a_record_that_does_not_match(tmp_path):
    images = labelled([20, 15, 18])
    _, indices = labelled_subset(images, per_class=5, seed=1)
    record = subset_record(images, 5, 1, indices)
    with pytest.raises(UserError, match="split_digest differs"):
        unseen_indices(labelled([20, 15, 19]), record)
    with pytest.raises(UserError, match="indices_sha256 differs"):
        unseen_indices(images, {**record, "seed": 2})
    (tmp_path / "bad.json").write_text('{"per_class": 5}')
    with pytest.raises(UserError, match="missing seed, count"):
        read_subset_record(tmp_path / "bad.json")
    with pytest.raises(UserError, match="cannot read"):
        read_subset_record(tmp_path / "absent.json")

import pytest
import torch

from acquire.data import ImageSet
from acquire.errors import UserError
from gans.memorisation import memorisation, nearest_distances, plot_memorisation


def random_set(n, shape=(3, 10, 14), classes=4, seed=0):
    rng = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), generator=rng, dtype=torch.uint8)
    return ImageSet(images, torch.arange(n) % classes)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 10, 14)])
def test_nearest_distances_match_brute_force_in_chunks(shape):
    queries, references = random_set(37, shape, seed=1).images_NCHW, random_set(53, shape, seed=2).images_NCHW
    references[5] = queries[3]
    distance, index = nearest_distances(queries, references, chunk_size=8)
    q, r = queries.flatten(1).double() / 255, references.flatten(1).double() / 255
    full = (q[:, None] - r[None]).norm(dim=2)  # every pair by its difference (cdist's matmul form is not exact at 0)
    assert torch.equal(index, full.argmin(1))
    assert torch.allclose(distance, full.min(1).values, atol=1e-9)
    assert distance[3] == 0 and index[3] == 5


def test_a_generator_returning_its_training_images_is_all_near_copies():
    train, heldout = random_set(120, seed=3), random_set(400, seed=4)
    copies = train.subset(torch.randint(0, 120, (300,), generator=torch.Generator().manual_seed(5)))
    result = memorisation(copies, train, heldout)
    row = result.row()
    assert row["near_copy_share"] == 1.0 and row["nn_median_generated"] == 0.0 and row["nn_median_ratio"] == 0.0
    assert row["near_copy_share_heldout"] == pytest.approx(0.05, abs=0.01)
    assert all(c["near_copy_share"] == 1.0 for c in result.by_class())


def test_a_generator_returning_unseen_real_images_sits_at_the_baseline():
    train, heldout, fresh = random_set(120, seed=6), random_set(400, seed=7), random_set(400, seed=8)
    row = memorisation(fresh, train, heldout).row()
    assert 0.0 < row["near_copy_share"] < 0.12
    assert row["nn_median_ratio"] == pytest.approx(1.0, abs=0.02)
    assert row["nn_p5_heldout"] == pytest.approx(row["near_copy_threshold"], rel=0.01)


def test_per_class_shares_follow_the_samples_labels():
    train, heldout = random_set(80, seed=9), random_set(200, seed=10)
    fresh = random_set(100, seed=11)
    mixed = ImageSet(torch.cat([train.images_NCHW[:40], fresh.images_NCHW[:60]]),
                     torch.cat([torch.zeros(40, dtype=torch.int64), torch.ones(60, dtype=torch.int64)]))
    per_class = {row["class"]: row for row in memorisation(mixed, train, heldout).by_class()}
    assert per_class[0]["near_copy_share"] == 1.0 and per_class[0]["generated"] == 40
    assert per_class[1]["near_copy_share"] < 0.2 and per_class[1]["heldout"] == 50


def test_shapes_that_differ_are_refused_naming_them():
    with pytest.raises(UserError, match=r"generated samples \[1, 10, 14\].*training images \[3, 10, 14\]"):
        memorisation(random_set(5, (1, 10, 14)), random_set(5), random_set(5))
    with pytest.raises(UserError, match="needs held-out images"):
        memorisation(random_set(5), random_set(5), random_set(0))


def test_plot_writes_a_png(tmp_path):
    train, heldout = random_set(60, seed=12), random_set(100, seed=13)
    path = plot_memorisation(memorisation(train.subset(torch.arange(30)), train, heldout), tmp_path / "m.png", "copies")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_on_real_mnist_copies_and_unseen_images_separate(mnist_dir, tiny_train, tiny_test):
    train, unseen = tiny_train.subset(torch.arange(100)), tiny_train.subset(torch.arange(100, 400))
    copies = memorisation(train, train, tiny_test).row()
    novel = memorisation(unseen, train, tiny_test).row()
    assert copies["near_copy_share"] == 1.0
    assert novel["near_copy_share"] < 0.15 and novel["nn_median_ratio"] == pytest.approx(1.0, abs=0.15)

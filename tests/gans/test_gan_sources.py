"""GAN sources: the untrained-GAN error gives a command that writes only that GAN's own files, with the settings of
a sidecar committed without its weights; a GAN of another shape or class count, or a --gan-dir that is a file, is
refused."""

import json

import pytest
import torch

from acquire.data import ImageSet
from gans.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from gans.pggan import PgganConfig
from gans.registry import get_family
from acquire.errors import UserError
from gans.sources import (GanNotTrainedError, check_source_matches, gan_weights_digests,
                          trained_checkpoint)
from runners import train_gans


def test_the_suggested_command_trains_only_the_missing_gans_and_leaves_quality_csv_alone(tmp_path):
    with pytest.raises(GanNotTrainedError) as error:
        gan_weights_digests(tmp_path, ["dada", "pggan"])
    message = str(error.value)
    assert f"python -m runners.train_gans --gans dada,pggan --out {tmp_path} --no-quality" in message
    assert "writes only" in message and "quality.csv" in message and "--preset" not in message


def test_a_committed_sidecar_without_weights_gives_its_own_settings(tmp_path):
    config = PgganConfig(channels=(32, 32, 16, 8), betas=(0.0, 0.9), images_per_stage=48000)
    data = ImageSet(torch.zeros(20, 1, 28, 28, dtype=torch.uint8), torch.arange(10).repeat(2))
    path = save_checkpoint(tmp_path / "pggan.pt", "pggan", get_family("pggan").build(config), config, data,
                           extra={"seed": 3}, half=True)
    path.unlink()  # committed lean: sidecar only
    with pytest.raises(GanNotTrainedError) as error:
        trained_checkpoint(tmp_path, "pggan")
    command = str(error.value).split("Train them with: ")[1].split("   (")[0]
    assert command == (f"python -m runners.train_gans --gans pggan --set pggan.channels=32,32,16,8 "
                       f"--set pggan.images_per_stage=48000 --set pggan.betas=0.0,0.9 --out {tmp_path} --no-quality "
                       "--seed 3 --train-size 20 --half")
    overrides = [train_gans.parse_override(word) for word in command.split() if "=" in word]
    assert train_gans.family_config("pggan", overrides) == config  # the flags parse back to the sidecar's config


def save_small_gan(gan_dir):
    """An untrained tiny small_dcgan checkpoint in gan_dir; returns gan_dir."""
    family = get_family("small_dcgan")
    config = family.config_class(latent_dim=8, embed_dim=4, g_channels=8, d_channels=8)
    torch.manual_seed(0)
    data = ImageSet(torch.zeros(10, 1, 28, 28, dtype=torch.uint8), torch.arange(10))
    save_checkpoint(gan_dir / "small_dcgan.pt", "small_dcgan", family.build(config), config, data)
    return gan_dir


def test_a_gan_of_another_shape_or_class_count_is_refused_naming_both(tmp_path):
    save_small_gan(tmp_path)
    path = tmp_path / "small_dcgan.pt"
    check_source_matches(path, (1, 28, 28), 10)
    with pytest.raises(UserError, match=r"makes 1x28x28 images of 10 classes, but the data has 1x28x28 images of 4"):
        check_source_matches(path, (1, 28, 28), 4)
    with pytest.raises(UserError, match=r"but the data has 3x48x48 images of 10 classes"):
        check_source_matches(path, (3, 48, 48), 10)


def test_a_gan_dir_that_is_a_file_is_refused_as_such(tmp_path):
    not_a_dir = tmp_path / "zoo.pt"
    not_a_dir.write_bytes(b"")
    with pytest.raises(UserError, match="is a file, not a directory of GAN checkpoints"):
        gan_weights_digests(not_a_dir, ["small_dcgan"])


@pytest.mark.parametrize("edit", [{"family": "pggan"}, {"config": {"latent_dim": float("nan")}}])
def test_a_sidecar_whose_config_does_not_fit_its_family_is_refused_naming_the_sidecar(tmp_path, edit):
    save_small_gan(tmp_path)
    sidecar = tmp_path / "small_dcgan.json"
    meta = json.loads(sidecar.read_text())
    meta = {**meta, **({"config": {**meta["config"], **edit["config"]}} if "config" in edit else edit)}
    sidecar.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=f"{sidecar}: its config does not describe"):
        check_source_matches(tmp_path / "small_dcgan.pt", (1, 28, 28), 10)
    with pytest.raises(CheckpointError, match="does not describe"):
        load_checkpoint(tmp_path / "small_dcgan.pt")

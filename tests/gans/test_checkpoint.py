"""GAN checkpoints: round trip, and refusal of anything that is not exactly what it claims to be."""

import json
import pickle

import pytest
import torch

from acquire.data import ImageSet
from gans.checkpoint import CheckpointError, file_sha256, load_checkpoint, save_checkpoint
from gans.registry import get_family

MARKER = {}


class Exploit:
    """A pickle payload that would run code on load."""

    def __reduce__(self):
        return (MARKER.__setitem__, ("executed", True))


@pytest.fixture
def saved(tmp_path):
    family = get_family("small_dcgan")
    config = family.config_class()
    torch.manual_seed(0)
    generator = family.build(config)
    data = ImageSet(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.arange(4))
    return save_checkpoint(tmp_path / "small_dcgan.pt", "small_dcgan", generator, config, data), generator


def test_round_trip_gives_the_same_samples(saved):
    path, generator = saved
    loaded, meta = load_checkpoint(path, "small_dcgan")
    labels = torch.arange(10)
    assert torch.equal(loaded.sample(labels, torch.Generator().manual_seed(1)),
                       generator.sample(labels, torch.Generator().manual_seed(1)))
    assert meta["family"] == "small_dcgan" and len(meta["training_data_sha256"]) == 64


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the attacker's protocol-4 pickle
def test_malicious_pickle_is_refused_even_with_a_matching_digest(saved):
    path, _ = saved
    with open(path, "wb") as f:
        pickle.dump({"weight": Exploit()}, f)
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["weights_sha256"] = file_sha256(path)  # the attacker also rewrote the sidecar
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="not a plain tensor checkpoint"):
        load_checkpoint(path, "small_dcgan")
    assert "executed" not in MARKER


def test_corrupt_file_is_refused(saved):
    path, _ = saved
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(path, "small_dcgan")


def test_other_family_or_architecture_is_refused(saved):
    path, _ = saved
    with pytest.raises(CheckpointError, match="not 'large_dcgan'"):
        load_checkpoint(path, "large_dcgan")
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["config"]["g_channels"] *= 2
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not match the small_dcgan architecture"):
        load_checkpoint(path, "small_dcgan")


def test_missing_sidecar_is_refused(saved):
    path, _ = saved
    path.with_suffix(".json").unlink()
    with pytest.raises(CheckpointError, match="sidecar"):
        load_checkpoint(path)


def test_equal_weights_give_an_equal_sha_whatever_the_file_name(saved, tmp_path):
    path, generator = saved
    family = get_family("small_dcgan")
    data = ImageSet(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.arange(4))
    other = save_checkpoint(tmp_path / "elsewhere" / "renamed.pt", "small_dcgan", generator, family.config_class(),
                            data)
    recorded = json.loads(path.with_suffix(".json").read_text())["weights_sha256"]
    assert file_sha256(other) == file_sha256(path) == recorded


def test_half_checkpoint_is_float16_on_disk_and_float32_when_loaded(saved, tmp_path):
    _, generator = saved
    family = get_family("small_dcgan")
    data = ImageSet(torch.zeros(4, 1, 28, 28, dtype=torch.uint8), torch.arange(4))
    path = save_checkpoint(tmp_path / "half.pt", "small_dcgan", generator, family.config_class(), data, half=True)
    full = tmp_path / "small_dcgan.pt"
    assert path.stat().st_size < 0.6 * full.stat().st_size
    assert json.loads(path.with_suffix(".json").read_text())["weights_dtype"] == "float16"
    loaded, _ = load_checkpoint(path, "small_dcgan")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert torch.equal(loaded.state_dict()["project.weight"], generator.state_dict()["project.weight"].half().float())
    meta = json.loads(path.with_suffix(".json").read_text())
    meta["weights_dtype"] = "float32"  # a sidecar that lies about the stored precision
    path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="float32"):
        load_checkpoint(path, "small_dcgan")


@pytest.mark.parametrize("damage, message", [
    (lambda meta: {k: v for k, v in meta.items() if k != "weights_sha256"}, "has no weights_sha256"),
    (lambda meta: {k: v for k, v in meta.items() if k != "config"}, "has no config"),
    (lambda meta: [meta], "holds a JSON list"),
    (lambda meta: {**meta, "config": None}, "config that is not an object"),
    (lambda meta: {**meta, "family": "no_such_gan"}, "unknown GAN family"),
])
def test_every_malformed_sidecar_is_refused_naming_the_file(saved, damage, message):
    path, _ = saved
    sidecar = path.with_suffix(".json")
    sidecar.write_text(json.dumps(damage(json.loads(sidecar.read_text()))))
    with pytest.raises(CheckpointError, match=message) as error:
        load_checkpoint(path)
    assert str(sidecar) in str(error.value) or str(path) in str(error.value)


def test_a_non_utf8_sidecar_is_refused_naming_the_file(saved):
    path, _ = saved
    path.with_suffix(".json").write_bytes(b'{"family": "\xff\xfe"}')
    with pytest.raises(CheckpointError, match=r"small_dcgan.json is not UTF-8 text"):
        load_checkpoint(path)

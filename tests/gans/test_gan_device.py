"""Device discipline of the GAN code, checked without a GPU.

* Networks and data on the 'meta' device with a CPU torch.Generator: a tensor made on the CPU that meets the
  run's tensors fails as a CUDA run would (training, sampling).
* Every random draw from a torch.Generator names device=generator.device (a draw on the default device with a
  CUDA generator fails on a GPU; on the CPU only this check sees it).
* Samples are the same bytes for 1 and 2 threads (and, by the same float64 argument, on any device).
"""

import pytest
import torch
from torch.overrides import TorchFunctionMode

from gans.dada import DadaConfig, discriminator_step, init_networks
from gans.dcgan import SmallDCGANConfig
from gans.pggan import PgganConfig
from gans.base import balanced_samples
from gans.registry import get_family
from gans.training import train_images_to_float

TINY = {
    "small_dcgan": SmallDCGANConfig(latent_dim=8, embed_dim=4, g_channels=8, d_channels=8, batch_size=32, epochs=1.0),
    "dada": DadaConfig(latent_dim=8, generator_width=8, discriminator_width=4, feature_dim=16, epochs=0.5,
                       batch_size=16),
    "pggan": PgganConfig(latent_dim=8, label_dim=4, channels=(8, 8, 4, 4), images_per_stage=16,
                         batch_sizes=(8, 8, 8, 8)),
}
RANDOM_FACTORIES = {torch.randn, torch.rand, torch.randint, torch.randperm, torch.normal, torch.bernoulli,
                    torch.multinomial}


class DrawsOnTheGeneratorsDevice(TorchFunctionMode):
    """Fails any random factory call given a generator but not device=generator.device; counts the draws."""

    def __init__(self):
        super().__init__()
        self.draws = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if kwargs.get("generator") is not None and func in RANDOM_FACTORIES:
            self.draws += 1
            assert "device" in kwargs and torch.device(kwargs["device"]) == kwargs["generator"].device, \
                f"{func.__name__} draws from a generator without device=generator.device"
        return func(*args, **kwargs)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("name", list(TINY))
def test_training_and_sampling_draw_on_the_generators_device(gan_images, name):
    with DrawsOnTheGeneratorsDevice() as mode:
        generator = get_family(name).train(gan_images, TINY[name], "cpu", torch.Generator().manual_seed(0),
                                           progress=False)
        balanced_samples(generator, 2, seed=1, device="cpu")
    assert mode.draws >= 5  # init, shuffles, z, and sampling were all seen


@pytest.mark.parametrize("name", ["small_dcgan", "pggan"])
def test_training_keeps_every_tensor_on_the_runs_device(gan_images, name):
    generator = get_family(name).train(gan_images, TINY[name], "meta", torch.Generator().manual_seed(0), progress=False)
    assert {p.device.type for p in generator.parameters()} == {"meta"}
    samples = balanced_samples(generator, 2, seed=1, device="meta")
    assert samples.images_NCHW.device.type == "meta" and samples.images_NCHW.dtype == torch.uint8


def test_dada_initialisation_and_critic_step_keep_tensors_on_the_runs_device(gan_images):
    real_NCHW, labels_N = train_images_to_float(gan_images, "meta")
    generator = torch.Generator().manual_seed(0)
    gen, disc = init_networks(TINY["dada"], real_NCHW, labels_N, generator)
    assert {p.device.type for p in [*gen.parameters(), *disc.parameters()]} == {"meta"}
    optimiser = torch.optim.Adam(disc.parameters())
    assert discriminator_step(gen, disc, optimiser, real_NCHW[:16], labels_N[:16], generator).device.type == "meta"
    assert gen.sample(torch.arange(10), generator).device.type == "meta"


@pytest.mark.parametrize("name", ["small_dcgan", "large_dcgan", "pggan", "dada"])
def test_samples_are_the_same_bytes_for_one_and_two_threads(name):
    family = get_family(name)
    torch.manual_seed(0)
    generator = family.build(family.config_class())  # the real architecture: big enough to use both threads
    labels_N = torch.arange(10).repeat(8)
    was_training = generator.training
    torch.set_num_threads(1)
    one = generator.sample(labels_N, torch.Generator().manual_seed(3))
    torch.set_num_threads(2)
    two = generator.sample(labels_N, torch.Generator().manual_seed(3))
    assert torch.equal(one, two)
    assert generator.training == was_training and next(generator.parameters()).dtype == torch.float32  # untouched


def test_sampling_refuses_a_generator_off_the_cpu():
    generator = get_family("small_dcgan").build(TINY["small_dcgan"])

    class OnTheGpu:  # what sample() sees of a CUDA generator, without needing one
        device = torch.device("cuda")

    with pytest.raises(ValueError, match="CPU torch.Generator"):
        generator.sample(torch.arange(3), OnTheGpu())

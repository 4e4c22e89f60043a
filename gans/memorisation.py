"""Does a generator return its training images? Nearest-neighbour distances against a real baseline.

For every generated sample, the L2 distance (pixels as floats in [0, 1]) to its nearest image among the
generator's own training images; the same for held-out real images of the same data (never trained on). A
generator that makes new images sits at the held-out distances; one that copies sits near 0.

Near-copy threshold: the 5th percentile of the held-out distances (`quantile`). It is calibrated on the data
itself (no pixel-distance constant that holds for every image size) and robust: the smallest held-out distance
is not, because one held-out near-duplicate of a training image (common in real data sets) pulls it to ~0. So
held-out images are near-copies at a rate of `quantile` (5%) by construction: a generator as novel as fresh
real data scores about 5%, one that returns its training images 100%.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from matplotlib.figure import Figure

from acquire.data import ImageSet
from acquire.errors import UserError
from acquire.files import write_atomic


def flat_unit(images_NCHW: torch.Tensor) -> torch.Tensor:
    """uint8 images [N,C,H,W] -> float32 [N, C·H·W] in [0, 1]."""
    return images_NCHW.reshape(len(images_NCHW), -1).float().div(255)


def nearest_distances(queries_NCHW: torch.Tensor, references_MCHW: torch.Tensor,
                      chunk_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance_N float64, index_N) of each query's nearest reference: L2 on [0, 1] pixels, uint8 inputs.

    Memory-bounded: compares chunk_size queries with chunk_size references at a time (float32, on the queries'
    device); the winner's distance is recomputed exactly in float64, so an exact copy gives 0.
    """
    device = queries_NCHW.device
    references_MCHW = references_MCHW.to(device)
    best_N = torch.full((len(queries_NCHW),), float("inf"), device=device)
    index_N = torch.zeros(len(queries_NCHW), dtype=torch.int64, device=device)
    for q in range(0, len(queries_NCHW), chunk_size):
        queries_QD = flat_unit(queries_NCHW[q:q + chunk_size])
        for r in range(0, len(references_MCHW), chunk_size):
            references_RD = flat_unit(references_MCHW[r:r + chunk_size])
            squared_QR = (queries_QD.square().sum(1, keepdim=True) + references_RD.square().sum(1)
                          - 2 * queries_QD @ references_RD.T)
            chunk_best_Q, chunk_index_Q = squared_QR.min(dim=1)
            better_Q = chunk_best_Q < best_N[q:q + chunk_size]
            best_N[q:q + chunk_size] = torch.where(better_Q, chunk_best_Q, best_N[q:q + chunk_size])
            index_N[q:q + chunk_size] = torch.where(better_Q, chunk_index_Q + r, index_N[q:q + chunk_size])
    distance_N = torch.empty(len(queries_NCHW), dtype=torch.float64, device=device)
    for q in range(0, len(queries_NCHW), chunk_size):
        difference_QD = (flat_unit(queries_NCHW[q:q + chunk_size]).double()
                         - flat_unit(references_MCHW[index_N[q:q + chunk_size]]).double())
        distance_N[q:q + chunk_size] = difference_QD.norm(dim=1)
    return distance_N.cpu(), index_N.cpu()


@dataclass(frozen=True)
class Memorisation:
    """Nearest-neighbour distances to the training images: of generated samples [N] and of held-out images [M]."""

    generated_N: torch.Tensor
    generated_labels_N: torch.Tensor
    heldout_M: torch.Tensor
    heldout_labels_M: torch.Tensor
    quantile: float

    @property
    def threshold(self) -> float:
        """Below this distance a sample counts as a near-copy: the `quantile` of the held-out distances."""
        return torch.quantile(self.heldout_M, self.quantile).item()

    def summary(self, generated_N: torch.Tensor, heldout_M: torch.Tensor) -> dict:
        """Medians, 5th percentiles, their ratio and near-copy shares of two distance sets."""
        threshold = self.threshold
        generated_median, heldout_median = generated_N.median().item(), heldout_M.median().item()
        return {
            "nn_median_generated": generated_median,
            "nn_median_heldout": heldout_median,
            "nn_p5_generated": torch.quantile(generated_N, 0.05).item(),
            "nn_p5_heldout": torch.quantile(heldout_M, 0.05).item(),
            "nn_median_ratio": generated_median / heldout_median if heldout_median > 0 else float("nan"),
            "near_copy_share": (generated_N < threshold).double().mean().item(),
            "near_copy_share_heldout": (heldout_M < threshold).double().mean().item(),
        }

    def row(self) -> dict:
        """One flat row for quality.csv: the summary over all classes and the threshold."""
        return {**self.summary(self.generated_N, self.heldout_M), "near_copy_threshold": self.threshold}

    def by_class(self) -> list[dict]:
        """The summary per class (by the samples' and held-out images' labels), with the global threshold."""
        rows = []
        for c in sorted(set(self.generated_labels_N.tolist()) & set(self.heldout_labels_M.tolist())):
            generated_N = self.generated_N[self.generated_labels_N == c]
            heldout_M = self.heldout_M[self.heldout_labels_M == c]
            rows.append({"class": c, "generated": len(generated_N), "heldout": len(heldout_M),
                         **self.summary(generated_N, heldout_M)})
        return rows


def check_shapes(samples: ImageSet, train: ImageSet, heldout: ImageSet) -> None:
    """Refuse empty sets and image shapes that differ, naming them."""
    named = {"generated samples": samples, "training images": train, "held-out images": heldout}
    for name, images in named.items():
        if len(images) == 0:
            raise UserError(f"the memorisation measure needs {name}, got none; pass a non-empty set")
    shapes = {name: list(images.images_NCHW.shape[1:]) for name, images in named.items()}
    if len({tuple(shape) for shape in shapes.values()}) > 1:
        described = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise UserError(f"the memorisation measure compares images of one shape [C,H,W], got {described}; "
                        f"sample the generator at the shape of its training data")


def memorisation(samples: ImageSet, train: ImageSet, heldout: ImageSet, quantile: float = 0.05,
                 chunk_size: int = 1024) -> Memorisation:
    """Nearest-neighbour distances of generated `samples` and of real `heldout` images to the generator's own
    `train` images (uint8 [N,C,H,W], any shape; `heldout` must not overlap `train`)."""
    check_shapes(samples, train, heldout)
    if not 0 < quantile < 1:
        raise UserError(f"the near-copy quantile must lie in (0, 1), got {quantile}")
    generated_N, _ = nearest_distances(samples.images_NCHW, train.images_NCHW, chunk_size)
    heldout_M, _ = nearest_distances(heldout.images_NCHW, train.images_NCHW, chunk_size)
    return Memorisation(generated_N, samples.labels_N.cpu(), heldout_M, heldout.labels_N.cpu(), quantile)


def plot_memorisation(result: Memorisation, png_path: Path, title: str) -> Path:
    """Histograms of the two nearest-neighbour distance sets on shared bins, with the near-copy threshold, as a
    PNG written atomically."""
    figure = Figure(figsize=(6, 4))
    axes = figure.subplots()
    high = max(result.generated_N.max().item(), result.heldout_M.max().item())
    bins = torch.linspace(0, high if high > 0 else 1, 41).tolist()
    summary = result.row()
    axes.hist(result.heldout_M.numpy(), bins=bins, density=True, alpha=0.5,
              label=f"held-out real -> train (median {summary['nn_median_heldout']:.2f})")
    axes.hist(result.generated_N.numpy(), bins=bins, density=True, alpha=0.5,
              label=f"generated -> train (median {summary['nn_median_generated']:.2f})")
    axes.axvline(result.threshold, color="black", linestyle="--",
                 label=f"near-copy threshold: {summary['near_copy_share']:.0%} of samples below")
    axes.set_xlabel("L2 distance to the nearest training image (pixels in [0, 1])")
    axes.set_ylabel("density")
    axes.set_title(title)
    axes.legend(loc="best", fontsize="small")
    figure.tight_layout()
    return write_atomic(Path(png_path), lambda tmp: figure.savefig(tmp, dpi=100))

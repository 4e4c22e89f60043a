"""The few labelled images a generator is trained on: a class-balanced, seeded subset, and its record.

The record is a small JSON object that names the subset without listing it:
  {"per_class": 10, "seed": 0, "count": 100, "indices_sha256": "...", "split_digest": "..."}
indices_sha256 hashes the chosen positions into the full split (int64, in the order drawn); split_digest is
acquire.digests.image_set_digest(..., with_shape=False) of the full split. From the record and the same split, `unseen_indices` draws the
subset again, checks both hashes, and returns every other position: a study that measures on those can show
that the generator never saw them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from acquire.data import ImageSet, class_balanced_indices
from acquire.errors import UserError
from acquire.files import write_json
from acquire.digests import image_set_digest

RECORD_KEYS = ("per_class", "seed", "count", "indices_sha256", "split_digest")


def labelled_subset(images: ImageSet, per_class: int, seed: int) -> tuple[ImageSet, torch.Tensor]:
    """(subset, indices_N): per_class images of each class 0..K-1 (K = largest label + 1) drawn without
    replacement by a CPU generator seeded with `seed`; indices_N int64 [K·per_class] are positions in `images`."""
    if not isinstance(per_class, int) or per_class <= 0:
        raise UserError(f"images per class must be a positive integer, got {per_class!r}")
    if len(images) == 0:
        raise UserError("cannot take a labelled subset of an empty image set; pass the labelled training images")
    labels_N = images.labels_N.cpu()
    counts_K = torch.bincount(labels_N)
    smallest = int(counts_K.argmin())
    available = int(counts_K[smallest])
    if per_class > available:
        raise UserError(f"{per_class} images per class asked, but class {smallest} has only {available} labelled "
                        f"images; ask for at most {available} per class")
    indices_N = class_balanced_indices(labels_N, per_class * len(counts_K), torch.Generator().manual_seed(seed),
                                       num_classes=len(counts_K))
    return images.subset(indices_N), indices_N


def indices_sha256(indices_N: torch.Tensor) -> str:
    """sha256 of the positions as int64 bytes, in their order."""
    return hashlib.sha256(indices_N.cpu().to(torch.int64).contiguous().numpy().tobytes()).hexdigest()


def subset_record(images: ImageSet, per_class: int, seed: int, indices_N: torch.Tensor) -> dict:
    """The JSON-ready record of a `labelled_subset(images, per_class, seed)` that returned indices_N."""
    return {"per_class": per_class, "seed": seed, "count": len(indices_N), "indices_sha256": indices_sha256(indices_N),
            "split_digest": image_set_digest(images, with_shape=False)}


def write_subset_record(path: Path, record: dict) -> Path:
    """Write the record atomically as JSON."""
    return write_json(Path(path), record)


def read_subset_record(path: Path) -> dict:
    """A record written by `write_subset_record`, its keys checked."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise UserError(f"cannot read the subset record {path}: {error}; point to the subset.json written with "
                        f"the generator") from None
    missing = [key for key in RECORD_KEYS if not isinstance(record, dict) or key not in record]
    if missing:
        raise UserError(f"{path} is not a subset record (missing {', '.join(missing)}); point to the subset.json "
                        f"written with the generator")
    return record


def unseen_indices(images: ImageSet, record: dict) -> torch.Tensor:
    """Positions [N - count] in `images` (the full split) that the recorded subset did not take, after drawing the
    subset again and checking it against the record."""
    if image_set_digest(images, with_shape=False) != record["split_digest"]:
        raise UserError("these images are not the split the subset was drawn from (split_digest differs); load "
                        "the same labelled training data the generator was trained on")
    _, indices_N = labelled_subset(images, record["per_class"], record["seed"])
    if indices_sha256(indices_N) != record["indices_sha256"]:
        raise UserError(f"drawing {record['per_class']} per class with seed {record['seed']} no longer gives the "
                        f"recorded subset (indices_sha256 differs); use the PyTorch version that drew it")
    unseen_N = torch.ones(len(images), dtype=torch.bool)
    unseen_N[indices_N] = False
    return unseen_N.nonzero().squeeze(1)

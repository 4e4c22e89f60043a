"""The candidate pool: labelled images from one or more named sources, and what has been acquired."""

from __future__ import annotations

import hashlib

import torch

from acquire.errors import UserError
from acquire.data import ImageSet
from acquire.digests import image_set_digest

REAL_SOURCE = "raw"


class CandidatePool:
    """Candidates concatenated in source order, plus this arm's acquisition history.

    images_NCHW uint8 [N,C,H,W], labels_N int64 [N] and source_N int64 [N] (index into `source_names`)
    live on `device` and are shared, read-only, by every pool made with `fresh()`; each pool owns its
    availability mask and the per-round lists of acquired global indices. Sources may arrive on any
    device: they are joined on the CPU, fingerprinted, then moved.
    """

    def __init__(self, sources: dict[str, ImageSet], device: torch.device | str = "cpu"):
        if not sources:
            raise UserError("a pool needs at least one source")
        empty = [name for name, images in sources.items() if len(images) == 0]
        if empty:
            raise UserError(f"source(s) {empty} hold no images")
        shapes = {name: tuple(s.images_NCHW.shape[1:]) for name, s in sources.items()}
        if len(set(shapes.values())) > 1:
            raise UserError(f"every source of a pool needs the same image shape [C,H,W]; got {shapes}")
        self.source_names = list(sources)
        self.fingerprint = {name: {"images": len(s), "sha256": image_set_digest(s)} for name, s in sources.items()}
        self.images_NCHW = torch.cat([s.images_NCHW.cpu() for s in sources.values()]).to(device)
        self.labels_N = torch.cat([s.labels_N.cpu() for s in sources.values()]).to(device)
        self.source_N = torch.cat([torch.full((len(s),), i, dtype=torch.long)
                                   for i, s in enumerate(sources.values())]).to(device)
        self._available_N = torch.ones(len(self.labels_N), dtype=torch.bool, device=device)
        self.rounds: list[torch.Tensor] = []

    def fresh(self) -> "CandidatePool":
        """A pool over the same candidates with nothing acquired (no image copies)."""
        pool = object.__new__(CandidatePool)
        pool.source_names, pool.fingerprint, pool.images_NCHW, pool.labels_N, pool.source_N = (
            self.source_names, self.fingerprint, self.images_NCHW, self.labels_N, self.source_N)
        pool._available_N = torch.ones_like(self._available_N)
        pool.rounds = []
        return pool

    @property
    def device(self) -> torch.device:
        return self.images_NCHW.device

    def __len__(self) -> int:
        return len(self.labels_N)

    @property
    def num_available(self) -> int:
        return int(self._available_N.sum())

    def available_index(self) -> torch.Tensor:
        """Global indices [M] of candidates not yet acquired, ascending."""
        return self._available_N.nonzero().squeeze(1)

    def acquire(self, index_k: torch.Tensor) -> None:
        """Move candidates (global indices [k]) from the pool to the training set, as one round."""
        index_k = torch.as_tensor(index_k, dtype=torch.long).to(self._available_N.device)
        if len(index_k) > self.num_available:
            raise UserError(f"asked to acquire {len(index_k)} candidates but the pool holds only "
                             f"{self.num_available}; lower --per-round or --rounds, or add sources")
        if len(index_k) and (int(index_k.min()) < 0 or int(index_k.max()) >= len(self)):
            raise UserError(f"indices {index_k.tolist()} lie outside the pool of {len(self)} candidates")
        if len(index_k.unique()) != len(index_k) or not bool(self._available_N[index_k].all()):
            raise UserError(f"indices {index_k.tolist()} repeat or name candidates already acquired")
        self._available_N[index_k] = False
        self.rounds.append(index_k.cpu())

    def images_digest(self, index_k: torch.Tensor) -> str:
        """sha256 of the uint8 images [k,C,H,W] at global indices [k], in that order."""
        index_k = torch.as_tensor(index_k, dtype=torch.long).to(self.device)
        return hashlib.sha256(self.images_NCHW[index_k].cpu().contiguous().numpy().tobytes()).hexdigest()

    def __repr__(self) -> str:
        shape = list(self.images_NCHW.shape[1:])
        sources = ", ".join(f"{name}={part['images']:,}" for name, part in self.fingerprint.items())
        return (f"CandidatePool({len(self):,} candidates {shape} from {sources}; {len(self) - self.num_available:,} "
                f"acquired, on {self.device})")

    @property
    def acquired_index(self) -> torch.Tensor:
        """Global indices of all acquired candidates [n], in acquisition order."""
        return torch.cat(self.rounds) if self.rounds else torch.empty(0, dtype=torch.long)

    @property
    def is_real_N(self) -> torch.Tensor:
        """bool [N] on the pool's device: which candidates are real (source REAL_SOURCE); all False without one."""
        if REAL_SOURCE not in self.source_names:
            return torch.zeros(len(self), dtype=torch.bool, device=self.device)
        return self.source_N == self.source_names.index(REAL_SOURCE)

    def candidates(self) -> ImageSet:
        """Every candidate, acquired or not, as an ImageSet (no copies)."""
        return ImageSet(self.images_NCHW, self.labels_N)

    def training_set(self) -> ImageSet:
        """The acquired candidates as an ImageSet (on the pool's device)."""
        index_n = self.acquired_index.to(self.device)
        return ImageSet(self.images_NCHW[index_n], self.labels_N[index_n])

    def counts_by_source(self) -> dict[str, int]:
        """How many acquired candidates came from each source."""
        counts = torch.bincount(self.source_N[self.acquired_index.to(self.device)], minlength=len(self.source_names))
        return dict(zip(self.source_names, counts.tolist()))

"""The candidate pool: labelled images from one or more named sources, and what has been acquired."""

from __future__ import annotations

import torch

from acquire.data import ImageSet

REAL_SOURCE = "raw"


class CandidatePool:
    """Candidates concatenated in source order, plus this arm's acquisition history.

    images_NCHW uint8 [N,1,28,28], labels_N int64 [N] and source_N int64 [N] (index into
    `source_names`) are shared, read-only, by every pool made with `fresh()`; each pool owns its
    availability mask and the per-round lists of acquired global indices.
    """

    def __init__(self, sources: dict[str, ImageSet], device: torch.device | str = "cpu"):
        if not sources:
            raise ValueError("a pool needs at least one source")
        empty = [name for name, images in sources.items() if len(images) == 0]
        if empty:
            raise ValueError(f"source(s) {empty} hold no images")
        self.source_names = list(sources)
        self.images_NCHW = torch.cat([s.images_NCHW for s in sources.values()]).to(device)
        self.labels_N = torch.cat([s.labels_N for s in sources.values()]).to(device)
        self.source_N = torch.cat([torch.full((len(s),), i, dtype=torch.long)
                                   for i, s in enumerate(sources.values())]).to(device)
        self._available_N = torch.ones(len(self.labels_N), dtype=torch.bool, device=device)
        self.rounds: list[torch.Tensor] = []

    def fresh(self) -> "CandidatePool":
        """A pool over the same candidates with nothing acquired (no image copies)."""
        pool = object.__new__(CandidatePool)
        pool.source_names, pool.images_NCHW, pool.labels_N, pool.source_N = (
            self.source_names, self.images_NCHW, self.labels_N, self.source_N)
        pool._available_N = torch.ones_like(self._available_N)
        pool.rounds = []
        return pool

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
        index_k = torch.as_tensor(index_k, dtype=torch.long, device=self._available_N.device)
        if len(index_k) > self.num_available:
            raise ValueError(f"asked to acquire {len(index_k)} candidates but the pool holds only "
                             f"{self.num_available}; lower --per-round or --rounds, or add sources")
        if len(index_k.unique()) != len(index_k) or not bool(self._available_N[index_k].all()):
            raise ValueError(f"indices {index_k.tolist()} repeat or name candidates already acquired")
        self._available_N[index_k] = False
        self.rounds.append(index_k.cpu())

    @property
    def acquired_index(self) -> torch.Tensor:
        """Global indices of all acquired candidates [n], in acquisition order."""
        return torch.cat(self.rounds) if self.rounds else torch.empty(0, dtype=torch.long)

    def training_set(self) -> ImageSet:
        """The acquired candidates as an ImageSet (on the pool's device)."""
        index_n = self.acquired_index.to(self.labels_N.device)
        return ImageSet(self.images_NCHW[index_n], self.labels_N[index_n])

    def counts_by_source(self) -> dict[str, int]:
        """How many acquired candidates came from each source."""
        counts = torch.bincount(self.source_N[self.acquired_index.to(self.source_N.device)],
                                minlength=len(self.source_names))
        return dict(zip(self.source_names, counts.tolist()))

"""Generators on few labelled images: each family with and without the low-data recipe, at n images per class.

One row per (n, family, recipe, seed) of OUT/table.csv: a generator fitted (gans.fit) on L, a class-balanced subset
of n real images per class drawn by the seed and n (the same L for every family and recipe, so they compare paired),
for the same number of images shown; its quality (label agreement, Fréchet distance, CAS) and memorisation (samples'
nearest-neighbour distances to L against those of unseen real training images). `summary` gives mean ± std over
seeds. Rerunning continues: finished rows are kept, a generator in training continues from its state.
"""

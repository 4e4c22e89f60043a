"""The low-data study: DADA against baselines and classical augmentation on small class-balanced subsets."""

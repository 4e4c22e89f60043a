"""The ratio sweep: classifiers trained on real images with generated ones mixed in at a ratio."""

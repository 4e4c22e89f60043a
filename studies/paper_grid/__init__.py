"""The paper grid (runners.mnist_bald, runners.ratio_sweep): real MNIST joined by samples of the GAN zoo."""

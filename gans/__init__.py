"""Class-conditional GAN families that add generated candidates to the pool."""

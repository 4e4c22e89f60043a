"""Class-conditional GAN families that add generated candidates to the pool.

Importing the package registers the built-in families (each family module calls gans.registry.register_family
at import), so gans.registry.get_family knows them whichever gans module was imported first.
"""

from gans import dada, dcgan, pggan  # noqa: F401

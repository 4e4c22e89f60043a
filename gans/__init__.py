"""Class-conditional generators for any image shape and classes, and what measures them.

base (the generator interface, class-balanced sampling), registry (families, --set parsing, how to add one),
training (the one shared training loop and adversarial step), one module per family (dcgan, pggan, dada),
checkpoint, quality, report (the zoo's quality.csv), grid. Importing the package registers the built-in families
(each family module calls gans.registry.register_family at import), so gans.registry.get_family knows them
whichever gans module was imported first.
"""

from gans import dada, dcgan, pggan  # noqa: F401

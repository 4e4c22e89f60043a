"""Imports every built-in family module so that each registers itself."""

from gans import dada, dcgan, pggan  # noqa: F401

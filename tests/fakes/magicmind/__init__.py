"""Contract-faithful fake of Cambricon's `magicmind` Python package, for tests only (see python/runtime)."""

__version__ = "0.0.1-fake"

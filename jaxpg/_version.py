"""The package's version, in a module of its own: the drivers record it
without importing the package's root (which imports them)."""

__version__ = "0.1.0"

"""nasrepro: a benchmark-driven reproduction suite for neural architecture search."""

__version__ = "0.1.0"

"""The supernet / network training stack (ops, networks, image datasets, training loops)."""

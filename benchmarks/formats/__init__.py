"""Readers of the official benchmark file formats (no TensorFlow, pickles only with opt-in or checksum)."""

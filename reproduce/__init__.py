"""Experiments: runner, executors, comparison, report, and the paper reproductions."""

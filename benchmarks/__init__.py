"""Benchmarks: figures measured next to a bare-library floor in the same run."""

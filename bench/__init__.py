"""Benchmarks: performance as ratios against a baseline run beside it."""

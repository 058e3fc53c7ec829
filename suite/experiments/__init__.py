"""Experiments the science benchmarks run: data, models, attacks and landscape computations."""

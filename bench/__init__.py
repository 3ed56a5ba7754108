"""Benchmarks: ``make bench`` runs them (bench/run.py) and writes docs/benchmarks.md.

Not part of the test run.
"""

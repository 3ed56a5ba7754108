"""Tests of the sharing policies (policies/): parsing, evaluation, names, diff, properties."""

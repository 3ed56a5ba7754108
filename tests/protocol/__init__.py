"""Tests of the protocol package: vectors, canonical JSON, keys, signatures, wire models."""

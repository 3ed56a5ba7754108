"""CATTC federation protocol v1: wire types, canonical JSON, Ed25519 keys and signatures.

This package is pure: it imports nothing of the project and no web or storage framework,
so another implementation can be checked against it line by line (DESIGN sections 6, 6.1).
"""

PROTOCOL_VERSION = 1
PROTOCOL_NAME = "cattc/1"

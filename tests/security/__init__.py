"""Tests of triggers.security: encryption at rest, key rotation, signatures, sealed credentials."""

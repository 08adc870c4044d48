"""Tests of triggers.deliveries: async attempts, retries, the sweep and retention."""

"""Tests of triggers.api: the REST API of triggers and deliveries, and its OpenAPI schema."""

"""Tests of triggers.pages and the admin: the server-rendered UI."""

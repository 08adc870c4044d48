"""Tests of triggers.live: websocket consumers, access checks on open sockets, the live pages as rendered."""

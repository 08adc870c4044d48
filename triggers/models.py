"""Triggers arrive with the triggers issue; the app is wired now so migrations and URLs have a home."""

"""Deliveries after the edge stored them: attempts and retries, replays, the sweep and retention (retries)."""

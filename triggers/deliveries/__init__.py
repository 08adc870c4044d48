"""Deliveries after the edge stored them: attempts and retries, replays, the sweep and retention (retries), and
the filters of the delivery lists (filters)."""

"""What people see change without reloading: the websocket groups and their messages (broadcast), the
consumers that serve them, the badge a trigger shows, and the signals that make sockets re-check access."""

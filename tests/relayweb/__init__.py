"""Tests of relayweb's wiring and the processes as run: ASGI, health, origins, settings, the web server's limits,
outages, requirements, the README."""

"""Cost of keeping credentials for retries and replays, per webhook: `python tests/bench/bench_sealing.py`
(run by `make bench`; a few seconds, no servers).

What the ingress does with a request's headers before storing it: `signatures.redact_keeping` (the log's
redacted copy and the hidden values), then, only when something was hidden, `sealed.seal` (Fernet with the
first key of RELAY_ENCRYPTION_KEYS) and, after a sync forward, `sealed.scrub` of the logged response body.
Printed next to the redaction the ingress did before (a set lookup per header, no sealing), on the same
GitHub-like header block.
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(SECRET_KEY="bench-only", RELAY_ENCRYPTION_KEYS=["bench-key"])
django.setup()

from triggers.security import sealed, signatures  # noqa: E402

PLAIN = [("host", "relay.example.com"), ("user-agent", "GitHub-Hookshot/8a2f1c"),
         ("content-type", "application/json"), ("content-length", "1024"), ("accept", "*/*"),
         ("x-github-event", "push"), ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
         ("x-github-hook-id", "292430182"), ("accept-encoding", "gzip")]
SENSITIVE = [*PLAIN, ("authorization", "Basic dXNlcjpodW50ZXIyLXBhc3N3b3Jk"),
             ("x-gitlab-token", "glpat-SECRET-gitlab-shared-token"),
             ("x-hub-signature-256", "sha256=" + "ab" * 32)]
ECHO = (b'{"headers": {' + b", ".join(b'"%s": "%s"' % (k.encode(), v.encode()) for k, v in SENSITIVE)
        + b"}, " + b'"body": "' + b"x" * 1500 + b'"}')
VERIFIER = signatures.verifier_for("github", "s")
OLD_HIDDEN = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})


def before(headers):
    hidden = OLD_HIDDEN.union(VERIFIER.signature_headers)
    return [list(h) for h in [(n, signatures.REDACTED if n.lower() in hidden else v) for n, v in headers]], ""


def now(headers):
    logged, kept = signatures.redact_keeping(headers, VERIFIER)
    return logged, sealed.seal(kept) if kept else ""


def now_sync(headers):
    stored = now(headers)
    secrets = [v for k, v in headers if signatures.is_sensitive(k, VERIFIER)]
    return stored, sealed.scrub(ECHO, secrets)


def per_call_us(fn, *args, number=200) -> float:
    """The best of many short runs: on a shared machine the minimum is the figure that is not noise."""
    best = min(timeit.repeat(lambda: fn(*args), number=number, repeat=300))
    return best / number * 1e6


def main() -> None:
    rows = [
        ("no sensitive header, before", per_call_us(before, PLAIN)),
        ("no sensitive header, now", per_call_us(now, PLAIN)),
        ("3 sensitive headers, before (redacted only)", per_call_us(before, SENSITIVE)),
        ("3 sensitive headers, now (redacted + sealed)", per_call_us(now, SENSITIVE)),
        ("3 sensitive headers, now + scrub of a 2 KiB echo (sync)", per_call_us(now_sync, SENSITIVE)),
    ]
    for label, us in rows:
        print(f"{label:58s} {us:7.2f} µs per request")


if __name__ == "__main__":
    main()

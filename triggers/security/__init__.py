"""Secrets at rest and signatures: Fernet keys (crypto), sealed delivery headers (sealed), senders' signature
checks and the redaction of credentials (signatures). Leaves: they import no other triggers module but each
other."""

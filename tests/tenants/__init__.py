"""Tests of tenants: tenants, members, invitations, sign-in, tokens, the audit log, the admin."""

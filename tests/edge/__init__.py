"""Tests of triggers.edge: the webhook ingress, its upstream client and the delivery writer."""

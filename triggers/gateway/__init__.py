"""The Ambassador gateway as relayweb sees it: its diagnostics snapshot (diag), read by the pages, the live side
and the cluster watcher. A leaf: it imports no other triggers module."""

"""Handler logs kept after their pods: queries, correlation with deliveries, retention.
The collector that writes them follows the pods' logs through the cluster seam: triggers/cluster/logs.py."""

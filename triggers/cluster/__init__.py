"""The Kubernetes side: the only client of the cluster (kube), rendering and applying deployments (deploys), tenant
namespaces (provisioning), reading status (status), the watcher and its leader election, and the cluster check
(check). Other packages reach Kubernetes only through triggers.cluster.kube."""

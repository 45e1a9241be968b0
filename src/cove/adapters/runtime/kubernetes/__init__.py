"""Kubernetes runtime: spaces as secured namespaces, apps as Deployments."""

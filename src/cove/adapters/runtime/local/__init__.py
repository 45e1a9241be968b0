"""Local runtime: each instance is a hardened OCI container run by podman with runc."""

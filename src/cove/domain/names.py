"""The one name rule, used for users, spaces, apps and process types."""

from __future__ import annotations

import re

from cove.domain.contract import RESERVED_ENV
from cove.domain.errors import Invalid

NAME_PATTERN = r"^[a-z]([a-z0-9-]*[a-z0-9])?$"
_NAME = re.compile(NAME_PATTERN)
_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_NAME = 30
RESERVED = frozenset({"cove", "admin", "api", "git", "www", "default", "system", "root"})
# User and space names also name hosts, namespaces and people: none may pass for the
# platform, a system service, another host or a system account.
RESERVED_ACCOUNTS = RESERVED | frozenset({
    "administrator", "localhost", "nginx", "postgres", "postgresql", "mysql", "redis",
    "registry", "docker", "podman", "kubernetes", "kube", "kube-system", "kube-public",
    "kube-node-lease", "ingress-nginx", "builds", "console", "docs", "metrics", "status",
    "mail", "smtp", "ns1", "ns2", "support", "security", "nobody", "daemon", "bin", "sys",
    "postmaster", "hostmaster", "webmaster"})
# Cove sets these itself; letting a tenant override them would lie to the app.
RESERVED_CONFIG = RESERVED_ENV


def check_name(kind: str, name: str) -> str:
    """Return `name` if it is a DNS-label-safe Cove name, else raise Invalid.

    Names end up in hostnames (<app>-<space>.<domain>), container names and
    Kubernetes objects, so they are lowercase, short and hyphen-safe.
    """
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > MAX_NAME or "--" in name:
        raise Invalid(
            f"invalid {kind} name {name!r}: use 1-{MAX_NAME} lowercase letters, digits and single "
            "hyphens, starting with a letter and not ending with a hyphen"
        )
    if name in (RESERVED_ACCOUNTS if kind in ("user", "space") else RESERVED):
        raise Invalid(f"{kind} name {name!r} is reserved: choose another")
    return name


# Names no tenant may route: this machine's own, names that never resolve publicly, and
# reverse-DNS zones; IP addresses are refused as well (the last label is never numeric).
RESERVED_DOMAINS = ("localhost", "invalid", "arpa", "local", "internal")


def check_hostname(hostname: str) -> str:
    """Return a normalised custom domain, else raise Invalid."""
    host = hostname.strip().lower().rstrip(".")
    labels = host.split(".")
    if (
        len(host) > 253
        or len(labels) < 2
        or not all(0 < len(label) <= 63 and _HOST_LABEL.match(label) for label in labels)
    ):
        raise Invalid(f"invalid domain {hostname!r}: give a hostname such as www.example.com")
    return host


def check_routable(host: str) -> str:
    """A custom domain must be a public name: not an IP address, not a reserved name."""
    last = host.rsplit(".", 1)[-1]
    if last.isdigit() or last in RESERVED_DOMAINS:
        raise Invalid(f"{host} cannot be an app's domain (an IP address, or a name reserved "
                      "for this machine or for no one): give a domain you own")
    return host


def check_config_key(key: str) -> str:
    if not _CONFIG_KEY.match(key) or len(key) > 128:
        raise Invalid(
            f"invalid config var name {key!r}: use letters, digits and underscores, "
            "not starting with a digit"
        )
    if key in RESERVED_CONFIG:
        raise Invalid(f"config var {key} is set by Cove and cannot be overridden")
    return key

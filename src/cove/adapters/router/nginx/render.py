"""Pure rendering of routes into an nginx configuration (snapshot-tested)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cove.ports.router import Route

CHECK_HOST = "router-check.cove.invalid"  # .invalid: never a real tenant's name
NOT_FOUND = ("No app is served at this address. Check the URL, or run `cove apps` to see "
             "your apps and `cove domains` for their domains.")
NO_INSTANCES = ("This app has no running web instances. If it is yours: `cove ps` shows why, "
                "`cove scale web=1` starts one.")


@dataclass(frozen=True)
class RouterConfig:
    prefix: str  # nginx's working directory (pid, logs, temp files)
    listen: str  # host:port
    api_backend: str | None  # host:port of Cove's API, served for api_hosts
    api_hosts: tuple[str, ...]
    user: str | None = "nobody nogroup"  # workers' user when started as root
    worker_processes: str = "auto"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _proxy(upstream: str, buffering: bool = True) -> str:
    lines = [
        f"            proxy_pass http://{upstream};",
        "            proxy_set_header Host $host;",
        "            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "            proxy_set_header X-Forwarded-Proto $scheme;",
        "            proxy_set_header X-Forwarded-Host $host;",
        "            proxy_set_header Upgrade $http_upgrade;",
        "            proxy_set_header Connection $connection_upgrade;",
        "            proxy_next_upstream error timeout http_502 http_503;",
        "            proxy_next_upstream_tries 3;",
        "            proxy_connect_timeout 5s;",
        "            proxy_read_timeout 3600s;",
    ]
    if not buffering:
        lines.append("            proxy_buffering off;")
        lines.append("            proxy_request_buffering off;")
    return "\n".join(lines)


def render(config: RouterConfig, routes: list[Route]) -> str:
    p = config.prefix
    out = [
        "# Written by Cove; edits are overwritten.",
        *( [f"user {config.user};"] if config.user else [] ),
        f"worker_processes {config.worker_processes};",
        f"pid {p}/nginx.pid;",
        f"error_log {p}/error.log warn;",
        "events { worker_connections 4096; }",
        "http {",
        "    access_log off;",
        "    server_tokens off;",
        "    default_type text/plain;",
        # A bucket must hold the longest name DNS allows (253): tenants' domains can be.
        "    server_names_hash_bucket_size 512;",
        "    server_names_hash_max_size 65536;",
        "    client_max_body_size 512m;",
        f"    client_body_temp_path {p}/tmp/body;",
        f"    proxy_temp_path {p}/tmp/proxy;",
        f"    fastcgi_temp_path {p}/tmp/fastcgi;",
        f"    uwsgi_temp_path {p}/tmp/uwsgi;",
        f"    scgi_temp_path {p}/tmp/scgi;",
        "    proxy_http_version 1.1;",
        "    map $http_upgrade $connection_upgrade { default upgrade; '' ''; }",
        "",
        "    server {",
        f"        listen {config.listen} default_server;",
        "        server_name _;",
        f"        location / {{ return 404 {_quote(NOT_FOUND + chr(10))}; }}",
        "    }",
    ]
    if config.api_backend:
        out += [
            "",
            f"    upstream cove_api {{ server {config.api_backend}; }}",
            "    server {",
            f"        listen {config.listen};",
            f"        server_name {' '.join(config.api_hosts)};",
            "        location / {",
            _proxy("cove_api", buffering=False),  # logs -f and build output stream
            "        }",
            "    }",
        ]
    for route in sorted(routes, key=lambda r: r.app_id):
        upstream = f"cove_app_{route.app_id}"
        out.append("")
        if route.backends:
            out.append(f"    upstream {upstream} {{")
            for backend in route.backends:
                out.append(f"        server {backend} max_fails=1 fail_timeout=2s;")
            out.append("        keepalive 32;")
            out.append("    }")
        out += ["    server {", f"        listen {config.listen};",
                f"        server_name {' '.join(route.hostnames)};", "        location / {"]
        if route.backends:
            out.append(_proxy(upstream))
        else:
            out.append(f"            return 503 {_quote(NO_INSTANCES + chr(10))};")
        out += ["        }", "    }"]
    out.append("}")
    body = "\n".join(out) + "\n"
    # A host that answers with this configuration's fingerprint: after a reload Cove asks
    # for it until the answer is new, so "released" means new connections see the change.
    generation = hashlib.sha256(body.encode()).hexdigest()[:16]
    check = (f"    server {{\n        listen {config.listen};\n"
             f"        server_name {CHECK_HOST};\n"
             f"        location / {{ return 200 \"{generation}\"; }}\n    }}\n}}\n")
    return body[: -len("}\n")] + check


def backends_of(text: str) -> set[str]:
    """The apps' backends a rendered configuration sends traffic to."""
    found: set[str] = set()
    upstream = False
    for line in text.splitlines():
        words = line.split()
        if words[:2] and words[0] == "upstream":
            upstream = words[1].startswith("cove_app_")
        elif upstream and words[:1] == ["server"]:
            found.add(words[1].rstrip(";"))
        elif words[:1] == ["}"]:
            upstream = False
    return found


def generation_of(text: str) -> str:
    """The fingerprint a rendered configuration answers to CHECK_HOST with."""
    marker = f"server_name {CHECK_HOST};"
    after = text[text.index(marker):]
    return after.split('return 200 "', 1)[1].split('"', 1)[0]

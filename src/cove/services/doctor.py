"""`cove doctor [APP]`: the production-readiness checklists of a Kubernetes-class PaaS, for
the platform a space runs on and for an app, judged from what the backend really runs.

The checks Cove controls (limits, non-root, read-only root, privileges, seccomp, pinned
images, health checks, isolation, quotas) pass for everything made with Cove's defaults;
the ones the user controls (instances of web, config, a release command) warn with a fix.
"""

from __future__ import annotations

import re

from cove.domain.checks import FAIL, PASS, WARN, Check
from cove.domain.models import App, Release, Space, User
from cove.domain.procfile import RELEASE
from cove.domain.roles import Action, allows
from cove.ports.pool import InspectablePool
from cove.ports.runtime import Posture
from cove.services.access import app_for, space_for
from cove.services.context import Context
from cove.services.pools import pool_of
from cove.services.spaces import template_of, usage_of

SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|KEY|CREDENTIAL|PRIVATE|AUTH|"
                         r"(_URL|_URI|_DSN)$", re.I)
CREDENTIAL_VALUE = re.compile(r"^[a-z][a-z0-9+.-]*://[^/@\s:]+:[^/@\s]+@|"
                              r"-----BEGIN [A-Z ]*PRIVATE KEY-----|\bpassword=\S", re.I)
DATABASE_NAME = re.compile(r"^(DATABASE|POSTGRES|PG|MYSQL|MONGO|DB)[A-Z_]*(URL|URI|DSN)?$", re.I)


def _platform(ctx: Context, space: Space) -> list[Check]:
    """What the platform does for every app of the space, on its pool."""
    pool = pool_of(ctx, space)
    quota = template_of(space).quota
    checks = [Check("platform", "pool", PASS, f"the space runs on the {pool.name!r} pool",
                    "where the checks below were read")]
    if isinstance(pool, InspectablePool):
        checks += [Check("platform", c.name, c.status, c.detail, c.why, c.fix)
                   for c in pool.space_checks(space.name)]
    else:
        checks.append(Check("platform", "isolation", WARN, f"the {pool.name!r} pool cannot "
                            "report how it keeps spaces apart", "unverified isolation",
                            "ask the operator"))
    checks += [
        Check("platform", "quota", PASS,
              f"{quota.apps} apps, {quota.instances} instances, {quota.memory_mb} MiB, "
              f"{quota.cpu_millis}m CPU, {quota.builds} builds at once",
              "one space cannot starve the others"),
        Check("platform", "logs kept", PASS, "the instances' output and Cove's events are "
              "kept per app, bounded in size (`cove logs`)",
              "what happened before a crash must still be readable"),
        Check("platform", "backups of Cove's state", WARN,
              "Cove does not back up its own database",
              "apps, releases, config and members live there",
              "back up the database (sqlite3 .backup or pg_dump) on a schedule"),
        Check("platform", "TLS", WARN, "apps are served over plain HTTP",
              "config, cookies and tokens cross the network in clear text",
              "put a TLS-terminating proxy in front of the router"),
        Check("platform", "metrics", WARN, "no metrics endpoint",
              "capacity and errors cannot be watched or alerted on",
              "watch `cove ps` and the logs until metrics land"),
    ]
    return checks


def space_report(ctx: Context, user: User, space_name: str) -> list[Check]:
    with ctx.store.unit_of_work() as uow:
        space, _ = space_for(uow, user, space_name, Action.READ)
        usage = usage_of(uow, space)
    checks = _platform(ctx, space)
    quota = template_of(space).quota
    near = usage.instances >= quota.instances or usage.memory_mb >= quota.memory_mb
    checks.append(Check("platform", "room in the quota", WARN if near else PASS,
                        f"{usage.instances}/{quota.instances} instances, "
                        f"{usage.memory_mb}/{quota.memory_mb} MiB in use",
                        "a full quota refuses the next scale or deploy",
                        "scale something down, or ask a platform admin for more"))
    return checks


def app_report(ctx: Context, user: User, space_name: str, app_name: str) -> list[Check]:
    with ctx.store.unit_of_work() as uow:
        space, app = app_for(uow, user, space_name, app_name, Action.READ)
        _, role = space_for(uow, user, space_name, Action.READ)
        release = uow.releases.get(app.id, app.release_version) if app.release_version \
            else None
    checks = _platform(ctx, space)
    if release is None:
        checks.append(Check("app", "deployed", WARN, "no release yet",
                            "there is nothing to check", f"cove deploy {app.name} IMAGE"))
        return checks
    pool = pool_of(ctx, space)
    postures = pool.posture(space.name, app.name) if isinstance(pool, InspectablePool) else []
    checks += _runtime_checks(app, release, postures)
    checks += _formation_checks(app, release)
    if allows(role, Action.DEPLOY):  # config is a developer's to read
        checks += _config_checks(app, release)
    return checks


def _verdict(name: str, ok: bool, seen: str, why: str, fix: str) -> Check:
    return Check("app", name, PASS if ok else FAIL, seen, why, fix)


def _runtime_checks(app: App, release: Release, postures: list[Posture]) -> list[Check]:
    checks = []
    pinned = "@sha256:" in release.image_digest
    checks.append(Check("app", "image pinned by digest", PASS if pinned else FAIL,
                        release.image_digest, "a tag can be moved; a digest runs exactly "
                        "what was released", "deploy again: Cove resolves tags to digests"))
    if not postures:
        checks.append(Check("app", "running", WARN, "no running instance to inspect",
                            "the checks of what really runs need one",
                            f"cove scale {app.name} web=1"))
        return checks
    shown = sorted({p.process for p in postures})
    n = len(postures)

    def every(field: str) -> bool:
        return all(getattr(p, field) for p in postures)

    unprivileged = every("no_capabilities") and every("no_new_privileges") and every("seccomp")
    as_released = all(p.image == release.image_digest for p in postures)
    checks += [
        _verdict("non-root", every("non_root"),
                 f"{n} instance{'s' if n != 1 else ''} of {', '.join(shown)} run"
                 f"{'s' if n == 1 else ''} as uid "
                 f"{', '.join(sorted({str(p.uid) for p in postures}))}",
                 "root in a container is one kernel bug away from root on the host",
                 "the image must not need root; Cove runs it as its unprivileged uid"),
        _verdict("read-only root filesystem", every("read_only_root"),
                 "read-only, /tmp writable" if every("read_only_root") else "writable",
                 "an attacker cannot change the app's code or tools", "keep writes to /tmp"),
        _verdict("no privileges", unprivileged,
                 "no capabilities, no_new_privs, seccomp filter" if unprivileged
                 else "capabilities, privilege gain or syscalls are not restricted",
                 "a compromised app gains nothing on the host", "redeploy with Cove's profile"),
        _verdict("requests and limits",
                 all(p.memory_limit_mb and p.cpu_limit_millis for p in postures),
                 ", ".join(sorted({f"{p.process}: {p.memory_limit_mb} MiB, "
                                   f"{p.cpu_limit_millis}m CPU" for p in postures})),
                 "one app cannot starve its neighbours", f"cove scale {app.name} web=1:SIZE"),
        _verdict("image running is the release's", as_released,
                 "every instance runs the released digest" if as_released
                 else ", ".join(sorted({p.image for p in postures})),
                 "what runs is what was released", "wait for the rollout, or redeploy"),
    ]
    probed = all(p.health_probe for p in postures if p.process == "web")
    checks.append(Check("app", "health check", PASS,
                        f"HTTP GET {app.health_path} must answer within {app.health_timeout}s "
                        "before traffic" + (", then probed while running" if probed else ""),
                        "a broken release never takes traffic"))
    return checks


def _formation_checks(app: App, release: Release) -> list[Check]:
    web = app.formation.get("web")
    count = (web.autoscale.min if web and web.autoscale else web.count) if web else 0
    checks = []
    if "web" in release.processes:
        checks.append(Check(
            "app", "more than one web instance", PASS if count > 1 else WARN,
            f"web runs {count} instance{'s' if count != 1 else ''}",
            "with one instance a crash, a restart or a node drain is downtime",
            f"cove scale {app.name} web=2"))
    has_database = any(DATABASE_NAME.match(k) for k in release.config)
    if RELEASE in release.processes:
        checks.append(Check("app", "release command", PASS, "runs once before each release "
                            "takes traffic", "schema migrations run before new code"))
    elif has_database:
        checks.append(Check("app", "release command", WARN, "a database is configured but "
                            "the Procfile has no release: command",
                            "migrations run by hand are forgotten or run twice",
                            "add `release: <migrate command>` to the Procfile"))
    return checks


def _config_checks(app: App, release: Release) -> list[Check]:
    hidden = sorted(k for k, v in release.config.items()
                    if CREDENTIAL_VALUE.search(v) and not SECRET_NAME.search(k))
    if hidden:
        return [Check("app", "secrets under plain names", WARN,
                      f"{', '.join(hidden)} hold{'s' if len(hidden) == 1 else ''} credentials",
                      "tools and people treat such names as harmless and show or log them",
                      "name secrets for what they are (…_PASSWORD, …_TOKEN, …_URL)")]
    return [Check("app", "secrets under plain names", PASS,
                  f"{len(release.config)} config vars, none hides a credential",
                  "tools and people treat plain names as harmless")]

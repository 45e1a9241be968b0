"""The pure parts of the doctors: the one list of host tools, version parsing, and the app
checks that read config and formation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cove.domain.checks import FAIL, PASS, WARN, Check, worst
from cove.domain.models import App, Process, Release
from cove.preflight.host import _lower_bound, tool_check
from cove.preflight.requirements import TOOLS, Tool, parse_version
from cove.services.doctor import _config_checks, _formation_checks

SCRIPT = Path(__file__).resolve().parents[2] / "src" / "cove" / "preflight" / "requirements.py"


def release(config: dict[str, str], processes: dict[str, list[str] | None]) -> Release:
    return Release(1, 1, 1, "img", "img@sha256:" + "0" * 64, config, processes, {}, "", "t")


def test_versions_are_read_from_what_tools_print() -> None:
    assert parse_version("nginx version: nginx/1.22.1") == (1, 22, 1)
    assert parse_version("runc version 1.1.5+ds1\ncommit: ...") == (1, 1, 5)
    assert parse_version("go version go1.26.8 linux/amd64") == (1, 26, 8)
    assert parse_version("podman version 4.3.1") == (4, 3, 1)
    assert parse_version("no number here") == ()


def test_every_tool_names_a_package_and_a_known_scope() -> None:
    from cove.preflight.requirements import SCOPES

    assert len({t.name for t in TOOLS}) == len(TOOLS)
    for tool in TOOLS:
        assert tool.package and tool.scope in SCOPES and tool.why


def test_the_install_script_reads_missing_packages_without_cove_installed(tmp_path: Path) -> None:
    """scripts/install-deps runs the module as a file with a bare interpreter: -S -E keep
    site-packages (and so Cove's dependencies) away."""
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = subprocess.run([sys.executable, "-S", "-E", str(SCRIPT), "missing", "--scope", "all"],
                          capture_output=True, text=True, env={"PATH": str(empty)}, check=True,
                          timeout=60)
    packages = proc.stdout.split()
    # Nothing is on that PATH: every package of a PATH-found tool is listed, once.
    assert "podman" in packages and "nginx-light" in packages and "golang-go" in packages
    assert packages.count("iptables") == 1


def test_a_missing_or_old_tool_fails_with_the_package_to_install(tmp_path: Path) -> None:
    missing = tool_check(Tool("nothing-here", "pkg-x", "runtime", "why"), path=str(tmp_path))
    assert missing.status == FAIL and "apt-get install pkg-x" in missing.fix
    old = tmp_path / "oldtool"
    old.write_text("#!/bin/sh\necho 'oldtool version 1.2.0'\n")
    old.chmod(0o755)
    checked = tool_check(Tool("oldtool", "oldtool", "runtime", "why", version_args=("-v",),
                              minimum=(1, 3)), path=str(tmp_path))
    assert checked.status == FAIL and "older than 1.3" in checked.detail
    fine = tool_check(Tool("oldtool", "oldtool", "runtime", "why", version_args=("-v",),
                           minimum=(1, 2)), path=str(tmp_path))
    assert fine.status == PASS and fine.detail.startswith("1.2.0 at ")


def test_python_requirements_lower_bounds() -> None:
    assert _lower_bound('psycopg[binary]>=3.1') == ("psycopg", (3, 1))
    assert _lower_bound('pytest>=8; extra == "dev"') == ("pytest", (8,))
    assert _lower_bound("types-PyYAML") == ("types-PyYAML", ())


def test_credentials_under_plain_names_warn_and_values_never_show() -> None:
    checks = _config_checks(App(1, 1, "a"), release({
        "UPSTREAM": "https://u:s3cret@example.test/x", "DATABASE_URL": "postgres://a:b@db/x",
        "SIGNING_KEY": "-----BEGIN RSA PRIVATE KEY-----", "NOTE": "-----BEGIN PRIVATE KEY-----",
        "GREETING": "hello", "HOMEPAGE": "https://example.test/a@b"}, {"web": None}))
    assert [c.status for c in checks] == [WARN]
    assert "NOTE, UPSTREAM hold credentials" in checks[0].detail
    assert "s3cret" not in checks[0].detail
    clean = _config_checks(App(1, 1, "a"), release({"GREETING": "hi"}, {"web": None}))
    assert clean[0].status == PASS


def test_formation_and_release_command() -> None:
    app = App(1, 1, "a", formation={"web": Process(1, "small")})
    one = {c.name: c for c in _formation_checks(app, release({}, {"web": None}))}
    assert one["more than one web instance"].status == WARN
    assert "release command" not in one  # no database, nothing to migrate
    app.formation["web"] = Process(3, "small")
    db = {c.name: c for c in _formation_checks(app, release({"DATABASE_URL": "x"},
                                                             {"web": None}))}
    assert db["more than one web instance"].status == PASS
    assert db["release command"].status == WARN
    migrated = {c.name: c for c in _formation_checks(
        app, release({"DATABASE_URL": "x"}, {"web": None, "release": ["migrate"]}))}
    assert migrated["release command"].status == PASS


def test_worst_status_and_one_line() -> None:
    ok, warned = Check("g", "a", PASS, "fine"), Check("g", "b", WARN, "meh", "why", "do x")
    assert worst([ok]) == PASS and worst([ok, warned]) == WARN
    assert worst([ok, Check("g", "c", FAIL, "bad")]) == FAIL
    assert warned.line().endswith("b — meh (fix: do x)") and "fix" not in ok.line()

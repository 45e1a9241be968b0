from __future__ import annotations

import pytest

from cove.domain.errors import Invalid, QuotaExceeded
from cove.domain.formation import apply_scale, default_formation
from cove.domain.models import Process
from cove.domain.names import check_config_key, check_hostname, check_name
from cove.domain.quota import Usage, check_fits, formation_usage
from cove.domain.roles import Action, Role, allows
from cove.domain.template import parse_template, template_record

TEMPLATE = {
    "quota": {"apps": 2, "instances": 4, "memory_mb": 512, "cpu_millis": 1000, "builds": 1},
    "sizes": {"small": {"memory_mb": 128, "cpu_millis": 250},
              "large": {"memory_mb": 512, "cpu_millis": 1000}},
    "limits": {"default_size": "small", "max_size": "small"},
}


@pytest.mark.parametrize("name", ["a", "hello", "team-x", "app2", "a" * 30])
def test_good_names(name: str) -> None:
    assert check_name("app", name) == name


@pytest.mark.parametrize("name", ["", "Hello", "-x", "x-", "a--b", "1app", "a_b", "a.b",
                                  "a" * 31, "ü", "admin", "x y", "../etc"])
def test_bad_names_say_what_to_use(name: str) -> None:
    with pytest.raises(Invalid) as err:
        check_name("app", name)
    assert (name == "admin" and "reserved" in str(err.value)) or "lowercase" in str(err.value)


def test_hostnames() -> None:
    assert check_hostname("WWW.Example.test.") == "www.example.test"
    for bad in ("localhost", "exa mple.com", "-a.com", "a..b", "x" * 64 + ".com", "*.a.com"):
        with pytest.raises(Invalid):
            check_hostname(bad)


def test_config_keys() -> None:
    assert check_config_key("DATABASE_URL") == "DATABASE_URL"
    for bad in ("1X", "A-B", "", "PORT", "COVE_RELEASE"):
        with pytest.raises(Invalid):
            check_config_key(bad)


def test_roles_are_ordered() -> None:
    assert allows(Role.ADMIN, Action.DEPLOY)
    assert allows(Role.DEVELOPER, Action.DEPLOY)
    assert not allows(Role.VIEWER, Action.DEPLOY)
    assert not allows(Role.DEVELOPER, Action.ADMINISTER)
    assert Role.parse("Viewer") is Role.VIEWER
    with pytest.raises(Invalid):
        Role.parse("owner")


def test_template_round_trips_and_rejects_weakening() -> None:
    tpl = parse_template(TEMPLATE)
    assert parse_template(template_record(tpl)) == tpl
    with pytest.raises(Invalid, match="restricted"):
        parse_template({**TEMPLATE, "security": {"profile": "privileged"}})
    with pytest.raises(Invalid, match="deny"):
        parse_template({**TEMPLATE, "network": {"default": "allow"}})
    with pytest.raises(Invalid, match="non-root"):
        parse_template({**TEMPLATE, "security": {"run_as_uid": 0}})
    with pytest.raises(Invalid, match=r"quota\.apps"):
        parse_template({**TEMPLATE, "quota": {**TEMPLATE["quota"], "apps": -1}})


def test_build_limits_come_from_the_template() -> None:
    tpl = parse_template({**TEMPLATE, "builds": {"memory_mb": 512, "output_kb": 64}})
    assert (tpl.builds.memory_mb, tpl.builds.max_output_bytes, tpl.builds.pids) == (
        512, 65536, 512)
    assert parse_template(template_record(tpl)) == tpl
    old = parse_template({k: v for k, v in TEMPLATE.items() if k != "builds"})
    assert old.builds.timeout_seconds == 600  # spaces stored before build limits existed
    for bad in ({"pids": 0}, {"timeout_seconds": "long"}, {"memory_mb": -1}):
        with pytest.raises(Invalid, match="builds"):
            parse_template({**TEMPLATE, "builds": bad})
    with pytest.raises(Invalid, match="'builds' must be a mapping"):
        parse_template({**TEMPLATE, "builds": [1]})


def test_sizes_above_the_maximum_are_refused() -> None:
    tpl = parse_template(TEMPLATE)
    assert tpl.size(None).name == "small"
    with pytest.raises(Invalid, match="maximum"):
        tpl.size("large")
    with pytest.raises(Invalid, match="unknown size"):
        tpl.size("huge")


def test_quota_arithmetic_names_the_limit() -> None:
    tpl = parse_template(TEMPLATE)
    usage = formation_usage(tpl, {"web": Process(3, "small"), "worker": Process(1, "small")})
    assert usage == Usage(apps=1, instances=4, memory_mb=512, cpu_millis=1000)
    check_fits(tpl.quota, usage, "this")
    with pytest.raises(QuotaExceeded, match="instances"):
        check_fits(tpl.quota, usage + Usage(instances=1), "scaling")


def test_scale_validates_types_counts_and_sizes() -> None:
    tpl = parse_template(TEMPLATE)
    current = {"web": Process(1, "small")}
    assert apply_scale(tpl, current, {"web"}, {"web": (3, None)})["web"].count == 3
    assert current["web"].count == 1  # the input is not modified
    with pytest.raises(Invalid, match="no process type 'worker'"):
        apply_scale(tpl, current, {"web"}, {"worker": (1, None)})
    with pytest.raises(Invalid, match="between"):
        apply_scale(tpl, current, {"web"}, {"web": (-1, None)})
    with pytest.raises(Invalid, match="maximum"):
        apply_scale(tpl, current, {"web"}, {"web": (1, "large")})


def test_default_formation_keeps_scale_and_starts_web_only() -> None:
    tpl = parse_template(TEMPLATE)
    result = default_formation(tpl, {"web", "worker"}, {"web": Process(2, "small")})
    assert result == {"web": Process(2, "small"), "worker": Process(0, "small")}

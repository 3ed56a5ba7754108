"""docker/compose.yaml, docker/Dockerfile and the PostgreSQL init script, checked without a
Docker engine: commands against the real CLI, settings against the real configuration.

Every check is also shown refusing a deliberately broken copy, so none passes vacuously.
"""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
from aiohttp import web

from node.config import NodeConfig, load_config, save_config
from node.web.routes import setup_routes
from tests.docker.checks import (
    BUILD_SCRIPT,
    CENTERS,
    COMPOSE,
    DOCKERFILE,
    HUB,
    IDENTITY_PATH,
    POSTGRES_DOCKERFILE,
    POSTGRES_IMAGE,
    POSTGRES_INIT,
    base_problems,
    compose_problems,
    copy_sources,
    dockerfile_problems,
    host_ip,
    load_compose,
    node_services,
    parse_cattc,
    unknown_env_names,
)
from tests.paths import PROJECT_ROOT

NODES = (HUB, *CENTERS)
SERVE = ["cattc", "serve", "/data", "--host", "0.0.0.0", "--port", "8080"]


@pytest.fixture
def compose() -> dict[str, Any]:
    return load_compose()


def _env(compose: dict[str, Any], node: str) -> dict[str, str]:
    return {k: str(v) for k, v in compose["services"][node]["environment"].items()}


# -- the command-line checker itself ------------------------------------------------------
def test_parse_cattc_reaches_the_command_that_would_run() -> None:
    contexts = parse_cattc(SERVE)
    assert [c.info_name for c in contexts] == ["cattc", "serve"]
    assert contexts[-1].params == {
        "data_dir": Path("/data"),
        "host": "0.0.0.0",
        "port": 8080,
        "workers": 1,
    }
    nested = parse_cattc(["cattc", "listings", "/data", "list", "--limit", "5"])
    assert [c.info_name for c in nested] == ["cattc", "listings", "list"]


@pytest.mark.parametrize(
    "argv",
    [
        ["cattc", "serve"],  # DATA_DIR missing
        ["cattc", "serve", "/data", "--port", "eighty"],
        ["cattc", "serve", "/data", "--hots", "0.0.0.0"],
        ["cattc", "serv", "/data"],
        ["cattc"],
        ["cattc", "listings", "/data"],  # a group without its subcommand
        ["cattc", "init", "/data", "--country", "VN"],  # --node-id missing
        ["python", "-m", "node.cli.main", "serve", "/data"],
    ],
)
def test_parse_cattc_refuses_broken_command_lines(argv: list[str]) -> None:
    with pytest.raises(click.ClickException):
        parse_cattc(argv)


# -- compose.yaml -----------------------------------------------------------------------
def test_compose_has_no_problems(compose: dict[str, Any]) -> None:
    assert compose_problems(compose) == []


def test_services_are_postgres_the_hub_and_the_nine_centers(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"postgres", *NODES}
    assert set(node_services(compose)) == set(NODES)


@pytest.mark.parametrize("node", NODES)
def test_every_node_serves_its_volume_on_8080(compose: dict[str, Any], node: str) -> None:
    svc = compose["services"][node]
    assert svc["command"] == SERVE
    assert parse_cattc(svc["command"])[-1].command.name == "serve"
    assert svc["volumes"] == [f"{node}-data:/data"]
    assert f"{node}-data" in compose["volumes"]
    assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("node", NODES)
def test_every_node_has_its_own_identity_and_database(compose: dict[str, Any], node: str) -> None:
    env = _env(compose, node)
    assert env["CATTC_NODE_ID"] == node
    assert env["CATTC_COUNTRY"] == node.upper()
    assert env["CATTC_NAME"]
    assert env["CATTC_BASE_URL"] == f"http://{node}:8080"
    assert env["CATTC_DATABASE_URL"] == f"postgresql://postgres:postgres@postgres:5432/cattc_{node}"
    if node == HUB:
        assert env["CATTC_IS_HUB"] == "true" and "CATTC_HUB_URL" not in env
    else:
        assert env["CATTC_HUB_URL"] == "http://cn:8080" and "CATTC_IS_HUB" not in env


@pytest.mark.parametrize("node", NODES)
def test_node_environment_is_a_valid_configuration(
    compose: dict[str, Any], node: str, tmp_path: Path
) -> None:
    """The values, not only the names: load_config applies them over a node.toml."""
    save_config(tmp_path, NodeConfig(node_id="zz", country="SG"))
    config = load_config(tmp_path, environ=_env(compose, node))
    assert (config.node_id, config.is_hub) == (node, node == HUB)
    assert config.resolved_database_url(tmp_path).endswith(f"/cattc_{node}")


def test_ports_are_distinct_and_on_loopback(compose: dict[str, Any]) -> None:
    ports = {n: compose["services"][n]["ports"] for n in NODES}
    assert ports[HUB] == ["127.0.0.1:8100:8080"]
    assert [ports[c] for c in CENTERS] == [[f"127.0.0.1:{8101 + i}:8080"] for i in range(9)]
    assert "ports" not in compose["services"]["postgres"]


@pytest.mark.parametrize(
    ("spec", "address"),
    [
        ("127.0.0.1:8100:8080", "127.0.0.1"),
        ("8100:8080", "0.0.0.0"),
        ("0.0.0.0:8100:8080", "0.0.0.0"),
        ("[::1]:8100:8080", "::1"),
        ({"target": 8080, "published": 8100}, "0.0.0.0"),
        ({"target": 8080, "published": 8100, "host_ip": "127.0.0.1"}, "127.0.0.1"),
    ],
)
def test_host_ip_reads_every_ports_syntax(spec: Any, address: str) -> None:
    assert host_ip(spec) == address


def test_compose_problems_are_found(compose: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    th = broken["services"]["th"]
    th["ports"] = ["8101:8080"]
    th["environment"]["CATTC_NODEID"] = "th"
    th["command"] = ["cattc", "serve", "--port", "8080"]
    del broken["services"]["ph"]
    found = "\n".join(compose_problems(broken))
    assert "th: port '8101:8080' is not bound to 127.0.0.1" in found
    assert "th: CATTC_NODEID is not a setting" in found
    assert "th: 'cattc serve --port 8080' is not a valid cattc command" in found
    assert "node services are" in found and "'ph'" in found


# -- environment names across the docker files --------------------------------------------
@pytest.mark.parametrize("path", [COMPOSE, DOCKERFILE, COMPOSE.parent / "entrypoint.sh"])
def test_every_cattc_variable_is_a_known_setting(path: Path) -> None:
    assert unknown_env_names(path.read_text(encoding="utf-8")) == []


def test_unknown_variable_names_are_found() -> None:
    text = "CATTC_NODE_ID=vn CATTC_HUB=true CATTC_DATA_DIR=/data"
    assert unknown_env_names(text) == ["CATTC_DATA_DIR", "CATTC_HUB"]


# -- postgres-init.sql -----------------------------------------------------------------
def test_postgres_creates_one_database_per_node(compose: dict[str, Any]) -> None:
    sql = POSTGRES_INIT.read_text(encoding="utf-8")
    created = re.findall(r"^CREATE DATABASE (\w+);$", sql, re.MULTILINE)
    assert sorted(created) == sorted(f"cattc_{n}" for n in NODES)
    pg = compose["services"]["postgres"]
    assert pg["image"] == POSTGRES_IMAGE
    assert "pg_isready -h 127.0.0.1" in " ".join(pg["healthcheck"]["test"])  # TCP, see there
    mounts = [v.split(":") for v in pg["volumes"]]
    init = [m for m in mounts if m[0] == "./postgres-init.sql"]
    assert init and init[0][1].startswith("/docker-entrypoint-initdb.d/")


# -- Dockerfile ---------------------------------------------------------------------------
def test_dockerfile_has_no_problems() -> None:
    assert dockerfile_problems(DOCKERFILE.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("USER 10001:10001", "USER root", "must not run as root"),
        ("USER 10001:10001", "", "must not run as root"),
        ("VOLUME /data", "VOLUME /var/lib/cattc", "no VOLUME /data"),
        ("EXPOSE 8080", "EXPOSE 80", "no EXPOSE 8080"),
        ("/.well-known/cattc-node", "/healthz", "does not fetch"),
        ("timeout=4)", "timeout=4", "not valid Python"),
        ("HEALTHCHECK", "# HEALTHCHECK", "no HEALTHCHECK"),
        ('"--port", "8080"]', '"--port", "eighty"]', "CMD: 'cattc serve"),
        ("FROM ${BASE_IMAGE}", "FROM python:3.11-slim", "not the Debian base image"),
        ("ARG BASE_IMAGE=cattc-base:", "ARG BASE_IMAGE=python:", "no ARG BASE_IMAGE"),
        ("/wheels/project/*.whl &&", "/src &&", "wheels/project) is not installed"),
        ("pip install --no-index --find-links", "pip install --find-links", "reaches the net"),
        ('ENTRYPOINT ["/usr/local/bin/', 'ENTRYPOINT ["/usr/bin/', "is not docker/entrypoint.sh"),
    ],
    ids=lambda v: str(v)[:24],
)
def test_dockerfile_problems_are_found(old: str, new: str, problem: str) -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert old in text
    problems = dockerfile_problems(text.replace(old, new))
    assert problems and problem in "\n".join(problems)


def test_healthcheck_path_is_a_route_of_the_node() -> None:
    app = web.Application()
    setup_routes(app)
    paths = {r.canonical for r in app.router.resources()}
    assert IDENTITY_PATH in paths


def test_postgres_image_is_made_from_the_debian_base() -> None:
    text = POSTGRES_DOCKERFILE.read_text(encoding="utf-8")
    assert base_problems(text) == []
    assert base_problems(text.replace("FROM ${BASE_IMAGE}", "FROM postgres:16"))
    assert "/docker-entrypoint-initdb.d" in text  # where compose.yaml mounts the init SQL


def test_build_context_holds_what_the_dockerfiles_copy() -> None:
    """build-image.sh makes the context: the wheels and the entrypoints each Dockerfile copies."""
    script = BUILD_SCRIPT.read_text(encoding="utf-8")
    for dockerfile in (DOCKERFILE, POSTGRES_DOCKERFILE):
        for source in copy_sources(dockerfile.read_text(encoding="utf-8")):
            if source.startswith("wheels/"):
                assert f'"$ctx/{source}"' in script, source
            else:
                assert (PROJECT_ROOT / "docker" / source).exists(), source
                assert f'"$here/{source}"' in script, source


# -- the scripts behind make docker-image and make docker-test ------------------------------
SCRIPTS = sorted(PROJECT_ROOT.glob("docker/*.sh"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_are_valid_executable_shell(script: Path, tmp_path: Path) -> None:
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"
    assert subprocess.run(["sh", "-n", str(script)], check=False).returncode == 0
    broken = tmp_path / script.name
    broken.write_text(script.read_text(encoding="utf-8") + "\nif then\n", encoding="utf-8")
    refused = subprocess.run(["sh", "-n", str(broken)], check=False, capture_output=True)
    assert refused.returncode != 0


def _stack_setting(name: str) -> str:
    text = (PROJECT_ROOT / "docker" / "stack-test.sh").read_text(encoding="utf-8")
    match = re.search(rf'^{name}="?([^"\n]+)"?$', text, re.MULTILINE)
    assert match, name
    return match.group(1)


def test_docker_test_uses_the_hub_and_centers_of_compose(compose: dict[str, Any]) -> None:
    members = _stack_setting("members").split()
    assert members and set(members) <= set(CENTERS)
    hub_ports = [str(p).split(":")[1] for p in compose["services"][HUB]["ports"]]
    assert hub_ports == [_stack_setting("hub_port")]

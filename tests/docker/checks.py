"""Checks of the files in docker/ that need no Docker engine (`make docker-test` runs the
images themselves; these run with the unit tests, wherever there is no engine).

Each check returns the problems it finds as sentences, so a test can show both that the
real files have none and that a deliberately broken copy is caught. The command lines are
judged by the real ``cattc`` CLI: click parses them exactly as it would before running.
"""

from __future__ import annotations

import json
import re
import shlex
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click
import yaml

from node.cli.main import cli
from node.config import known_env_vars
from tests.paths import PROJECT_ROOT

DOCKER = PROJECT_ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
POSTGRES_DOCKERFILE = DOCKER / "Dockerfile.postgres"
BUILD_SCRIPT = DOCKER / "build-image.sh"
BASE_ARG = "ARG BASE_IMAGE=cattc-base:"
ENTRYPOINT = DOCKER / "entrypoint.sh"
POSTGRES_INIT = DOCKER / "postgres-init.sql"
HUB = "cn"
CENTERS = ("th", "la", "kh", "mm", "vn", "bn", "id", "my", "ph")
NODE_IMAGE = "cattc-node:local"
POSTGRES_IMAGE = "cattc-postgres:local"
IDENTITY_PATH = "/.well-known/cattc-node"
ENV_NAME = re.compile(r"\bCATTC_[A-Z0-9_]+")
LOOPBACK = "127.0.0.1"


# -- the cattc CLI --------------------------------------------------------------------
def parse_cattc(argv: Sequence[str]) -> list[click.Context]:
    """Parse ``cattc ...`` as click would before running it: the group, then each
    subcommand in turn. Returns the contexts, the command that would run last; raises
    click.UsageError (or another ClickException) when the command line is not valid."""
    if not argv or argv[0] != "cattc":
        raise click.UsageError(f"not a cattc command line: {list(argv)}")
    ctx = cli.make_context("cattc", list(argv[1:]), resilient_parsing=False)
    contexts = [ctx]
    while isinstance(ctx.command, click.Group):
        rest = _unparsed(ctx)
        if not rest:
            raise click.UsageError("missing command", ctx)
        name, command, args = ctx.command.resolve_command(ctx, rest)
        if name is None or command is None:
            raise click.UsageError(f"no such command {rest[0]!r}", ctx)
        ctx = command.make_context(name, args, parent=ctx, resilient_parsing=False)
        contexts.append(ctx)
    return contexts


def _unparsed(ctx: click.Context) -> list[str]:
    """The group's tokens left for its subcommand (``protected_args`` until click 9)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        protected: list[str] = getattr(ctx, "protected_args", [])
    return [*protected, *ctx.args]


def command_problems(where: str, argv: Any) -> list[str]:
    if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        return [f"{where}: the command must be a list of strings, not {argv!r}"]
    try:
        parse_cattc(argv)
    except click.ClickException as exc:
        return [f"{where}: {shlex.join(argv)!r} is not a valid cattc command: {exc.message}"]
    return []


# -- environment variables --------------------------------------------------------------
def unknown_env_names(text: str) -> list[str]:
    """CATTC_* names in ``text`` that node.config does not read."""
    return sorted(set(ENV_NAME.findall(text)) - known_env_vars())


# -- compose.yaml -------------------------------------------------------------------------
# What `docker compose` does with ${NAME:?message}: the operator's value; a valid hub key.
TEST_ENV = {"CATTC_HUB_KEY": "A" * 42 + "E"}


def _interpolate(value: Any) -> Any:
    if isinstance(value, str):
        return re.sub(
            r"\$\{(\w+)(:[?-][^}]*)?\}", lambda m: TEST_ENV.get(m.group(1), m.group(0)), value
        )
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    return value


def load_compose(path: Path = COMPOSE) -> dict[str, Any]:
    """compose.yaml as `docker compose` reads it, with CATTC_HUB_KEY set by the operator."""
    data = _interpolate(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert isinstance(data, dict)
    return data


def node_services(compose: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the node image."""
    return {
        name: svc
        for name, svc in compose["services"].items()
        if svc.get("image") == NODE_IMAGE
        or (svc.get("build") or {}).get("dockerfile") == "docker/Dockerfile"
    }


def host_ip(spec: Any) -> str:
    """The host address a ports entry binds to (Docker's default is every address)."""
    if isinstance(spec, Mapping):
        return str(spec.get("host_ip") or "0.0.0.0")
    text = str(spec)
    if text.startswith("["):  # [::1]:8100:8080
        return text[1 : text.index("]")]
    parts = text.split(":")
    return parts[0] if len(parts) == 3 else "0.0.0.0"


def compose_problems(compose: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    nodes = node_services(compose)
    expected = {HUB, *CENTERS}
    if set(nodes) != expected:
        problems.append(f"node services are {sorted(nodes)}, expected {sorted(expected)}")
    for name, svc in compose["services"].items():
        for spec in svc.get("ports", []):
            if host_ip(spec) != LOOPBACK:
                problems.append(f"{name}: port {spec!r} is not bound to {LOOPBACK} only")
        env = svc.get("environment", {})
        if not isinstance(env, Mapping):
            problems.append(f"{name}: write environment as a mapping, not {type(env).__name__}")
            continue
        for key in unknown_env_names(" ".join(map(str, env))):
            problems.append(f"{name}: {key} is not a setting node.config reads")
    for name, svc in nodes.items():
        problems += command_problems(name, svc.get("command"))
    return problems


# -- Dockerfile ---------------------------------------------------------------------------
def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments left out."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        out.append((keyword.upper(), rest.strip()))
        pending = ""
    return out


def exec_form(args: str) -> list[str] | None:
    """The JSON (exec) form of CMD/ENTRYPOINT/HEALTHCHECK CMD, or None for shell form."""
    try:
        value = json.loads(args)
    except ValueError:
        return None
    return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None


def healthcheck_problems(args: str) -> list[str]:
    _, _, command = args.partition("CMD ")
    argv = exec_form(command.strip())
    if argv is None or argv[:2] != ["python", "-c"] or len(argv) != 3:
        return [f'HEALTHCHECK must be CMD ["python", "-c", <code>], not {args!r}']
    code = argv[2]
    problems = []
    if f"http://127.0.0.1:8080{IDENTITY_PATH}" not in code:
        problems.append(f"HEALTHCHECK does not fetch http://127.0.0.1:8080{IDENTITY_PATH}")
    try:
        compile(code, "<healthcheck>", "exec")
    except SyntaxError as exc:
        problems.append(f"HEALTHCHECK code is not valid Python: {exc.msg}")
    return problems


def dockerfile_problems(text: str) -> list[str]:
    ins = instructions(text)
    last = {keyword: args for keyword, args in ins}  # the last of each kind wins
    problems: list[str] = []
    problems += base_problems(text)
    user = last.get("USER", "")
    if user.split(":")[0] in {"", "root", "0"}:
        problems.append(f"USER {user!r}: the container must not run as root")
    volumes = exec_form(last.get("VOLUME", "")) or last.get("VOLUME", "").split()
    if "/data" not in volumes:
        problems.append("no VOLUME /data")
    if "8080" not in last.get("EXPOSE", "").replace("/tcp", "").split():
        problems.append("no EXPOSE 8080")
    if "HEALTHCHECK" not in last:
        problems.append("no HEALTHCHECK")
    else:
        problems += healthcheck_problems(last["HEALTHCHECK"])
    pips = [a for k, a in ins if k == "RUN" and "pip install" in a]
    if not any("/wheels/project/" in a for a in pips):
        problems.append("the project's wheel (wheels/project) is not installed with pip install")
    for args in pips:
        if args.count("pip install") != args.count("pip install --no-index"):
            problems.append(f"RUN {args!r}: pip install without --no-index reaches the network")
    copied = set()
    for keyword, args in ins:
        parts = [p for p in args.split() if not p.startswith("--")]
        if keyword == "COPY" and parts[0] == "entrypoint.sh":
            copied.add(parts[-1])
    entrypoint = exec_form(last.get("ENTRYPOINT", ""))
    if not entrypoint or entrypoint[0] not in copied:
        problems.append(f"ENTRYPOINT {last.get('ENTRYPOINT')!r} is not docker/entrypoint.sh")
    problems += command_problems("CMD", exec_form(last.get("CMD", "")))
    return problems


def base_problems(text: str) -> list[str]:
    """A Dockerfile must start from the base image docker/base-image.sh makes from Debian
    packages (a registry image cannot be pulled where the images are built)."""
    ins = instructions(text)
    froms = [a for k, a in ins if k == "FROM"]
    problems = []
    if froms != ["${BASE_IMAGE}"]:
        problems.append(f"FROM {froms!r} is not the Debian base image (FROM ${{BASE_IMAGE}})")
    if not any(k == "ARG" and f"ARG {a}".startswith(BASE_ARG) for k, a in ins):
        problems.append(f"no {BASE_ARG}<suite> (the image docker/base-image.sh makes)")
    return problems


def copy_sources(text: str) -> list[str]:
    """Paths from the build context that COPY instructions use."""
    out = []
    for keyword, args in instructions(text):
        if keyword == "COPY" and "--from" not in args:
            parts = [p for p in args.split() if not p.startswith("--")]
            out += parts[:-1]
    return out

"""No ``cattc`` command ever shows a traceback: broken input gives one ``error:`` line.

Every command and subcommand is taken from the click group itself (a new one is tried
without anyone listing it here) and run with broken input: a data directory that is
missing or is a file, a node.toml that is not UTF-8 or not TOML, a database URL that is
wrong or points at nothing, input files that are not UTF-8, URLs that are not URLs.
Each must exit non-zero with exactly one line on stderr, ``error: ...``. Commands run
in-process through CliRunner with ``catch_exceptions=False``, so an exception that
escapes fails the test with its traceback (``serve`` too: broken input stops it before
it would listen).

A failed ``cattc init`` must leave nothing behind, so that the same command works once
the cause is fixed.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from node.cli.main import cli
from node.config import CONFIG_FILE
from node.runtime import open_runtime
from node.services.directory import Member
from protocol.b64 import b64url_encode
from protocol.keys import KeyStore
from tests.conftest import POSTGRES_URL
from tests.e2e.test_processes import free_port
from tests.node.sample import sample_records
from tests.nodes import make_node_dir, seed_for

DatabaseUrlFactory = Callable[[str], str]
TH_KEY = f"ed25519:1={b64url_encode(KeyStore.generate(0, seed=seed_for('th')).active.public)}"
# Values for the required arguments and options, by parameter name.
VALUES = {
    "node_id": "th",
    "country": "TH",
    "owner": "th",
    "listing_id": "th-0001",
    "eoi_id": "eoi-1",
    "message": "interested",
    "audience": "th",
    "name": "ada",
    "role": "viewer",
    "peer": "cn",
    "out": "backup-never-written.tar.gz",
}
FILE_PARAMS = {"file", "listings", "pairs"}
# Commands that read nothing from the database: a broken database URL does not stop them.
NO_DATABASE = {"keys show"}
# Commands with their own tests of broken input (init and restore make the data directory).
OWN_TESTS = {"init", "restore"}  # restore too: tests/node/test_backup.py
# More options some commands need before they look at anything else.
EXTRA = {
    "directory add": ["--base-url", "http://th.example", "--country", "TH", "--key", TH_KEY],
}
# Commands that read a file record by record: a record it cannot decode is a problem of
# that line, listed on stdout like any other (exit 1), not a failure of the command.
RECORD_READERS = {"import"}


@dataclass(frozen=True)
class Leaf:
    """One runnable command: its words, and where its DATA_DIR goes."""

    words: tuple[str, ...]
    command: click.Command
    data_dir_after: int | None  # index in ``words`` after which DATA_DIR is given

    @property
    def name(self) -> str:
        return " ".join(self.words)

    def args(self, data_dir: Path | None, files: dict[str, Path]) -> list[str]:
        words = list(self.words)
        if self.data_dir_after is not None:
            assert data_dir is not None
            words.insert(self.data_dir_after + 1, str(data_dir))
        for param in self.command.params:
            if param.name == "data_dir" or not param.required:
                continue
            assert param.name is not None
            if param.name in FILE_PARAMS:
                value = str(files[param.name])
            else:
                value = VALUES[param.name]  # a new required parameter: give it a value here
            if isinstance(param, click.Option):
                words.append(param.opts[0])
            words.append(value)
        return words + EXTRA.get(self.name, [])


def leaves(group: click.Group = cli, words: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every command under ``group``, subcommands of subgroups included."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        path = (*words, name)
        if isinstance(command, click.Group):
            assert any(p.name == "data_dir" for p in command.params), name
            for leaf in leaves(command, path):
                yield Leaf(leaf.words, leaf.command, len(path) - 1)
        else:
            own = any(p.name == "data_dir" for p in command.params)
            yield Leaf(path, command, len(path) - 1 if own else None)


LEAVES = [leaf for leaf in leaves() if leaf.name not in OWN_TESTS]
WITH_DATA_DIR = [leaf for leaf in LEAVES if leaf.data_dir_after is not None]
WITH_FILES = [leaf for leaf in LEAVES if any(p.name in FILE_PARAMS for p in leaf.command.params)]
WITH_URLS = [
    leaf for leaf in LEAVES if any(p.name and p.name.endswith("url") for p in leaf.command.params)
]


def one_error_line(result: Result) -> str:
    """The single ``error:`` line of a failed command (and nothing else on stderr)."""
    assert "Traceback" not in result.output, result.output
    assert result.exit_code not in (0, None), (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    runner = CliRunner(env={"CATTC_DEBUG": "", **(env or {})})
    return runner.invoke(cli, args, prog_name="cattc", catch_exceptions=False)


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-errors")


@pytest.fixture(scope="module")
def node_dir(root: Path) -> Path:
    """A whole node on SQLite: a hub, so that the directory commands apply, with th as
    its member and one listing of its own."""
    data_dir, _, _ = make_node_dir(root, "cn", f"sqlite:///{root / 'cn.db'}", is_hub=True)
    rt = open_runtime(data_dir)
    try:
        rt.directory.upsert(
            Member(
                node_id="th",
                country="TH",
                name="th",
                base_url="http://th.example",
                keys={TH_KEY.partition("=")[0]: {"key": TH_KEY.partition("=")[2]}},
            ),
            create=True,
        )
        report = rt.listings.import_records([(1, sample_records("cn")[0])])
        assert not report.problems, report.problems
    finally:
        rt.close()
    return data_dir


@pytest.fixture(scope="module")
def files(root: Path) -> dict[str, Path]:
    """Input files that exist and are readable (their content is not the point)."""
    out = {}
    for name in FILE_PARAMS:
        path = root / f"{name}.jsonl"
        path.write_text("", encoding="utf-8")
        out[name] = path
    return out


def broken_copy(node_dir: Path, root: Path, name: str, config: bytes) -> Path:
    copy = root / name
    if not copy.exists():
        shutil.copytree(node_dir, copy)
        (copy / CONFIG_FILE).write_bytes(config)
    return copy


# -- every command, broken data directory or database -------------------------------------

DATA_DIR_CASES = ["missing", "a file", "node.toml not UTF-8", "node.toml not TOML"]
DATABASE_CASES = [
    "not a database URL",
    "unsupported database",
    "nothing listens",
    "SQLite file gone",
]


@pytest.mark.parametrize("case", DATA_DIR_CASES)
@pytest.mark.parametrize("leaf", WITH_DATA_DIR, ids=lambda leaf: leaf.name)
def test_a_broken_data_directory_is_one_error_line(
    leaf: Leaf, case: str, root: Path, node_dir: Path, files: dict[str, Path]
) -> None:
    if case == "missing":
        data_dir = root / "no-such-dir"
    elif case == "a file":
        data_dir = root / "a-file"
        data_dir.write_text("not a directory\n", encoding="utf-8")
    elif case == "node.toml not UTF-8":
        text = (node_dir / CONFIG_FILE).read_text(encoding="utf-8")
        data_dir = broken_copy(
            node_dir, root, "latin1", text.replace('name = "', 'name = "Centre é').encode("latin-1")
        )
    else:
        data_dir = broken_copy(node_dir, root, "not-toml", b"node_id = = cn\n")
    line = one_error_line(invoke(leaf.args(data_dir, files)))
    expected = {
        "missing": "is not a node data directory",
        "a file": "is a file",
        "node.toml not UTF-8": "is not UTF-8 text",
        "node.toml not TOML": "is not valid TOML",
    }[case]
    assert expected in line, line


@pytest.mark.parametrize("case", DATABASE_CASES)
@pytest.mark.parametrize("leaf", WITH_DATA_DIR, ids=lambda leaf: leaf.name)
def test_a_broken_database_url_is_one_error_line(
    leaf: Leaf, case: str, root: Path, node_dir: Path, files: dict[str, Path]
) -> None:
    gone = root / "deleted.db"  # a node's SQLite file deleted: never made anew, empty
    url = {
        "not a database URL": "not a url",
        "unsupported database": "mysql://cattc@127.0.0.1/cattc",
        "nothing listens": f"postgresql://cattc:secret@127.0.0.1:{free_port()}/cattc",
        "SQLite file gone": f"sqlite:///{gone}",
    }[case]
    result = invoke(leaf.args(node_dir, files), {"CATTC_DATABASE_URL": url})
    if leaf.name in NO_DATABASE:
        assert result.exit_code == 0, result.output
        return
    line = one_error_line(result)
    assert "secret" not in line  # the password is never printed
    if case == "nothing listens":
        assert "Connection refused" in line, line
    elif case == "SQLite file gone":
        assert f"database {gone} is missing" in line or f"{gone} does not exist" in line, line
        assert not gone.exists()
    else:
        assert "use postgresql://" in line, line


# -- files and URLs --------------------------------------------------------------------

ENCODINGS = ["latin-1", "utf-16", "binary"]


def file_in(encoding: str, root: Path, suffix: str) -> Path:
    path = root / f"bad-{encoding}{suffix}"
    text = '{"id": "th-0001", "title": {"en": "Séchage solaire"}}\n'
    if encoding == "binary":
        path.write_bytes(b"\xff\xfe\xfd\x00\x81\x82\n" * 4)
    else:
        path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("leaf", WITH_FILES, ids=lambda leaf: leaf.name)
def test_an_input_file_that_is_not_utf8_is_one_error_line(
    leaf: Leaf, encoding: str, root: Path, node_dir: Path
) -> None:
    bad = {name: file_in(encoding, root, ".jsonl") for name in FILE_PARAMS}
    result = invoke(leaf.args(node_dir, bad))
    if leaf.name in RECORD_READERS and result.stderr == "":
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert result.stdout.startswith("line 1: "), result.stdout
        return
    line = one_error_line(result)
    assert "utf-8" in line.lower(), line


BAD_URLS = ["http://[::1", "node.example.org", "ftp://node.example.org"]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("leaf", WITH_URLS, ids=lambda leaf: leaf.name)
def test_a_bad_url_is_one_error_line(
    leaf: Leaf, url: str, node_dir: Path, files: dict[str, Path]
) -> None:
    args = leaf.args(node_dir, files)
    for param in leaf.command.params:
        if param.name and param.name.endswith("url") and isinstance(param, click.Option):
            args += [param.opts[0], url]
    if any(p.name == "fetch" for p in leaf.command.params):
        args.append("--fetch")  # the URL is used, not only stored
    if any(p.name == "country" for p in leaf.command.params):
        args += ["--country", "TH"]
    line = one_error_line(invoke([*args[:2], *args[2:]]))
    assert "url" in line.lower(), line


# -- cattc init ------------------------------------------------------------------------


def init_args(data_dir: Path, *extra: str) -> list[str]:
    return ["init", str(data_dir), "--node-id", "th", "--country", "TH", *extra]


def bad_database_urls(root: Path) -> dict[str, str]:
    return {
        "not a URL": "not a url",
        "unsupported": "mysql://cattc@127.0.0.1/cattc",
        "nothing listens": f"postgresql://cattc@127.0.0.1:{free_port()}/cattc",
        "SQLite directory not made yet": f"sqlite:///{root / 'not' / 'yet' / 'node.db'}",
    }


@pytest.mark.parametrize("existing", [False, True], ids=["new dir", "existing empty dir"])
@pytest.mark.parametrize(
    "case", ["not a URL", "unsupported", "nothing listens", "SQLite directory not made yet"]
)
def test_a_failed_init_leaves_nothing_and_the_retry_works(
    tmp_path: Path, case: str, existing: bool
) -> None:
    data_dir = tmp_path / "nodes" / "th"
    if existing:
        data_dir.mkdir(parents=True)
    url = bad_database_urls(tmp_path)[case]
    line = one_error_line(invoke(init_args(data_dir, "--database-url", url)))
    assert line.endswith("; nothing was created"), line
    if existing:
        assert data_dir.is_dir() and list(data_dir.iterdir()) == []
    else:
        assert not (tmp_path / "nodes").exists()  # the directories it made are gone too
    assert not (tmp_path / "not").exists()
    result = invoke(init_args(data_dir))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"node th (TH) created in {data_dir}\n")


def test_init_into_a_database_not_created_yet(
    tmp_path: Path, db_engine_name: str, database_url: DatabaseUrlFactory
) -> None:
    """A PostgreSQL database that does not exist, or a SQLite file in a directory that
    does not: refused, nothing left; once it exists, the same command works."""
    data_dir = tmp_path / "th"
    if db_engine_name == "postgresql":
        base, _, _ = POSTGRES_URL.rpartition("/")
        url = f"{base}/cattc_not_created_yet"
        expected = 'database "cattc_not_created_yet" does not exist'
    else:
        url = f"sqlite:///{tmp_path / 'db' / 'node.db'}"
        expected = f"{tmp_path / 'db'} does not exist; create it first"
    line = one_error_line(invoke(init_args(data_dir, "--database-url", url)))
    assert expected in line, line
    assert not data_dir.exists()
    if db_engine_name == "postgresql":
        url = database_url("th")
    else:
        (tmp_path / "db").mkdir()
    result = invoke(init_args(data_dir, "--database-url", url))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("option", ["--base-url", "--hub-url"])
@pytest.mark.parametrize("url", BAD_URLS)
def test_init_refuses_a_bad_url_and_makes_nothing(tmp_path: Path, option: str, url: str) -> None:
    line = one_error_line(invoke(init_args(tmp_path / "th", option, url)))
    assert line == f"error: {option} {url!r} is not a URL; give one like https://node.example.org"
    assert not (tmp_path / "th").exists()


def test_init_refuses_a_data_dir_that_is_a_file_or_a_node(tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x", encoding="utf-8")
    assert "is a file" in one_error_line(invoke(init_args(afile)))
    assert invoke(init_args(tmp_path / "th")).exit_code == 0
    line = one_error_line(invoke(init_args(tmp_path / "th")))
    assert line == f"error: {tmp_path / 'th'} already holds a node; refusing to overwrite it"


# -- anything else ------------------------------------------------------------------------


def test_an_unexpected_failure_is_one_line_and_debug_shows_the_traceback(
    node_dir: Path, tmp_path: Path
) -> None:
    """A stored listing that is not JSON any more: no command foresees that."""
    db = tmp_path / "broken.db"
    shutil.copy(node_dir.parent / "cn.db", db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("UPDATE listings SET record = '{not json'").rowcount == 1
    env = {"CATTC_DATABASE_URL": f"sqlite:///{db}"}
    line = one_error_line(invoke(["listings", str(node_dir), "list"], env))
    assert line.startswith("error: unexpected JSONDecodeError: Expecting property name"), line
    assert line.endswith("; run it again with CATTC_DEBUG=1 for the details, and report it")
    with pytest.raises(json.JSONDecodeError):
        invoke(["listings", str(node_dir), "list"], {**env, "CATTC_DEBUG": "1"})


def test_a_usage_error_is_one_line_naming_the_help_to_read(node_dir: Path) -> None:
    result = invoke(["listings", str(node_dir), "list", "--no-such-option"])
    assert result.exit_code == 2
    assert one_error_line(result) == (
        "error: No such option '--no-such-option'. (see 'cattc listings DATA_DIR list --help')"
    )
    assert one_error_line(invoke(["no-such-command"])) == (
        "error: No such command 'no-such-command'. (see 'cattc --help')"
    )


def test_serve_on_a_busy_port_is_one_error_line(node_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_error_line(invoke(["serve", str(node_dir), "--port", str(port)]))
    assert str(port) in line, line


def test_an_import_from_a_pipe_is_one_error_line(root: Path, node_dir: Path) -> None:
    """A file is read twice (checked, then imported); a pipe (``<(zcat f.gz)``) gives its
    lines once, and the second read waited for ever."""
    fifo = root / "listings-pipe.jsonl"
    os.mkfifo(fifo)
    line = one_error_line(invoke(["import", str(node_dir), str(fifo)]))
    assert "not a regular file" in line and "save it to a file first" in line


INT_OPTIONS = [
    (leaf, option)
    for leaf in LEAVES
    for option in leaf.command.params
    if isinstance(option, click.Option) and isinstance(option.type, click.types.IntParamType)
]


@pytest.mark.parametrize(
    ("leaf", "option"), INT_OPTIONS, ids=lambda x: x.name if isinstance(x, Leaf) else x.opts[0]
)
@pytest.mark.parametrize("value", ["-1", "99999999999"])
def test_every_count_port_and_limit_is_bounded(
    leaf: Leaf, option: click.Option, value: str, node_dir: Path, files: dict[str, Path]
) -> None:
    """``--limit -1`` listed everything (SQLite's LIMIT -1), ``--port 70000`` was a
    traceback: every integer option has a range, and a value outside it is a usage line."""
    assert isinstance(option.type, click.IntRange), f"{leaf.name} {option.opts[0]} has no range"
    result = invoke([*leaf.args(node_dir, files), option.opts[0], value])
    assert result.exit_code == 2
    line = one_error_line(result)
    assert f"Invalid value for '{option.opts[0]}'" in line and "is not in the range" in line, line

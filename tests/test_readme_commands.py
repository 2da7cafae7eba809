"""The README's `flask --app wsgi …` commands, run verbatim where `make run` ran.

A copy of the checkout in a temporary folder plays the newcomer's clone:
`python -m devtools.embedded` (what `make run` starts) serves it, writes
`.env`, and every command the README shows then runs in that folder with no
settings in the environment, the way a reader types them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import free_port

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# What a checkout needs to serve (the rest is tests, docs, tooling caches).
CHECKOUT = (
    "wsgi.py",
    "Procfile",
    "pyproject.toml",
    "donations",
    "devtools",
    "migrations",
    "templates",
    "static",
    "translations",
)
PASSWORD = "Correct-horse-battery-9"
# The README's placeholder for "an account you made": the first one it creates.
EMAIL = "finance@newsroom.org"


def readme_commands() -> list[str]:
    """Every `flask --app wsgi …` in README.md, in order: code lines and inline code.

    A code line runs on while it ends with a backslash or leaves a quote open.
    """
    lines = README.read_text().splitlines()
    commands: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        found = re.findall(r"`(flask --app wsgi [^`]+)`", line)
        if line.startswith("flask --app wsgi "):
            command = line
            while command.endswith("\\") or not _complete(command):
                i += 1
                command = command.removesuffix("\\").rstrip() + " " + lines[i].strip()
            found = [command]
        for command in found:
            if command not in commands:
                commands.append(command)
        i += 1
    return commands


def _complete(command: str) -> bool:
    try:
        shlex.split(command, comments=True)
    except ValueError:  # "No closing quotation": it goes on on the next line
        return False
    return True


def as_typed(command: str) -> list[str]:
    """The words a reader types: comments dropped, optional ``[--flag]`` parts included."""
    words = shlex.split(re.sub(r"\[(--[^\]]*)\]", r"\1", command), comments=True)
    return [EMAIL if word == "EMAIL" else word for word in words]


def bare_environment() -> dict[str, str]:
    """A shell with the venv activated and none of the app's settings."""
    return {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", str(Path.home())),
        "LANG": "C.UTF-8",
    }


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clone = tmp_path_factory.mktemp("clone")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "instance", ".env")
    for name in CHECKOUT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, clone / name, ignore=ignore)
        else:
            shutil.copy2(source, clone / name)
    return clone


@pytest.fixture(scope="module")
def make_run(checkout: Path) -> Iterator[Path]:
    """`make run` in the copy: simulator, migrations, demo, gunicorn; stopped afterwards."""
    port = free_port()
    log = (checkout / "make-run.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.embedded"],
        cwd=checkout,
        env={**bare_environment(), "PORT": str(port), "WEB_CONCURRENCY": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        "make run did not start:\n" + (checkout / "make-run.log").read_text()
                    ) from None
                time.sleep(0.5)
        yield checkout
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def run(words: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        words,
        cwd=cwd,
        env=bare_environment(),
        input=f"{PASSWORD}\n{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_readme_shows_the_back_office_commands() -> None:
    groups = {as_typed(command)[3] for command in readme_commands()}
    assert {"staff", "reminders", "stripe", "supporters", "db", "demo"} <= groups


def test_the_readme_pictures_and_make_targets_exist() -> None:
    text = README.read_text()
    pictures = re.findall(r'src="(docs/[^"]+)"', text)
    assert len(pictures) >= 6
    assert [p for p in pictures if not (ROOT / p).is_file()] == []
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    assert set(re.findall(r"`make ([a-z-]+)", text)) <= targets


def test_help_needs_no_settings(checkout: Path) -> None:
    assert not (checkout / ".env").exists()
    for words in (
        ["flask", "--app", "wsgi", "--help"],
        ["flask", "--app", "wsgi", "staff", "create", "--help"],
    ):
        done = run(words, checkout)
        assert done.returncode == 0, done.stderr
        assert "Usage:" in done.stdout
        assert "Traceback" not in done.stdout + done.stderr
    assert "staff" in run(["flask", "--app", "wsgi", "--help"], checkout).stdout
    # A command that needs the settings says which are missing, in a few lines.
    done = run(["flask", "--app", "wsgi", "reminders", "send-due"], checkout)
    assert done.returncode == 2
    assert "SECRET_KEY is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_every_readme_command_runs_verbatim_after_make_run(make_run: Path) -> None:
    dotenv = (make_run / ".env").read_text()
    simulator = re.search(r"^STRIPE_API_BASE=(\S+)$", dotenv, re.M)
    assert simulator, dotenv  # the port the simulator actually got
    assert (make_run / ".env").stat().st_mode & 0o777 == 0o600
    for command in readme_commands():
        done = run(as_typed(command), make_run)
        output = done.stdout + done.stderr
        assert "Traceback" not in output, f"{command}\n{output}"
        if as_typed(command)[3:5] == ["supporters", "erase"]:
            # Nobody gave with the README's example address: refused, in one line.
            assert done.returncode == 1, f"{command}\n{output}"
            assert "No supporter has that email address" in output
        else:
            assert done.returncode == 0, f"{command}\n{output}"
    # They all used make run's database, where the README says it is.
    assert (make_run / "instance" / "donations.db").exists()
    assert not (make_run / "instance" / "instance").exists()
    listed = run(["flask", "--app", "wsgi", "staff", "create", EMAIL, "--role", "viewer"], make_run)
    assert "already" in (listed.stdout + listed.stderr).lower()

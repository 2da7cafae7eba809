"""`make run`: the embedded default, one command, nothing to configure.

Migrates a SQLite database under instance/, seeds the demo ask, starts the
Stripe simulator on loopback (its webhook pointed at the app) and serves the
app with the Procfile's `web` command. Ctrl-C stops everything it started.
With real Stripe keys in the environment (and no STRIPE_API_BASE) it uses
Stripe instead of the simulator.

It writes the settings it chose (the simulator's actual port included) to
`.env`, which the Flask CLI reads: `flask --app wsgi staff create …` and the
README's other commands then work in this checkout with nothing to set.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE = ROOT / "instance"
DOTENV = ROOT / ".env"
# Our block in .env; lines outside it are the developer's own and are kept.
DOTENV_BEGIN = "# >>> written by `make run` (devtools/embedded.py); regenerated on every run"
DOTENV_END = "# <<< make run"
# The settings `make run` decides; only these go to .env.
MANAGED = ("SECRET_KEY", "DATABASE_URL", "BASE_URL", "MAIL_DIR", "INSTANCE_PATH")
SIMULATOR_SETTINGS = (
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
)


def _procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        key, _, command = line.partition(":")
        if key.strip() == name:
            return command.strip()
    raise SystemExit(f"Procfile has no {name!r} process")


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _any_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _free(port):
            return
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early (code {proc.returncode})")
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start on 127.0.0.1:{port}")


def _first_request(port: int) -> None:
    """The app starts its scheduler (due reminders, mail retries) with the first
    request it serves; make one, so they go out even before anyone visits."""
    with contextlib.suppress(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).close()


def _secret_key() -> str:
    path = INSTANCE / "secret_key"
    if not path.exists():
        # Created 0600: never readable by others, not even between write and chmod.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as key_file:
            key_file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def environment(port: int, simulator_port: int) -> tuple[dict[str, str], bool]:
    env = dict(os.environ)
    use_stripe = bool(env.get("STRIPE_SECRET_KEY")) and not env.get("STRIPE_API_BASE")
    env.setdefault("SECRET_KEY", _secret_key())
    # Relative paths are read from the project root (donations/config.py), as in the README.
    env.setdefault("DATABASE_URL", "sqlite:///instance/donations.db")
    env.setdefault("BASE_URL", f"http://127.0.0.1:{port}")
    env.setdefault("MAIL_DIR", "instance/mail")
    env.setdefault("INSTANCE_PATH", "instance")
    env["PORT"] = str(port)
    if not use_stripe:
        env.update(
            STRIPE_SECRET_KEY="sk_test_simulated",  # noqa: S106 - the simulator's fixed test key
            STRIPE_PUBLISHABLE_KEY="pk_test_simulated",
            STRIPE_WEBHOOK_SECRET=env.get("STRIPE_WEBHOOK_SECRET", "whsec_simulated_" + "0" * 16),
            STRIPE_API_BASE=f"http://127.0.0.1:{simulator_port}",
        )
    # The processes started here get every setting explicitly; a .env must not add to them.
    env["FLASK_SKIP_DOTENV"] = "1"
    return env, use_stripe


def write_dotenv(env: dict[str, str], use_stripe: bool, path: Path = DOTENV) -> None:
    """Write the settings of this run to ``.env`` (0600: it holds SECRET_KEY).

    The Flask CLI loads it (python-dotenv) without overriding the environment.
    Real Stripe keys are never written: they stay in the developer's environment.
    """
    names = MANAGED if use_stripe else MANAGED + SIMULATOR_SETTINGS
    block = [DOTENV_BEGIN, *(f"{name}={_dotenv_quote(env[name])}" for name in names), DOTENV_END]
    kept: list[str] = []
    if path.exists():
        inside = False
        for line in path.read_text().splitlines():
            if line == DOTENV_BEGIN:
                inside = True
            elif line == DOTENV_END:
                inside = False
            elif not inside:
                kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    text = "\n".join([*kept, *([""] if kept else []), *block]) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as dotenv_file:
        dotenv_file.write(text)
    path.chmod(0o600)


def _dotenv_quote(value: str) -> str:
    if value and all(c.isalnum() or c in "-_./:@+,=" for c in value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def main() -> None:
    INSTANCE.mkdir(exist_ok=True)
    port = int(os.environ.get("PORT", "5000"))
    simulator_port = int(os.environ.get("SIMULATOR_PORT", "8420"))
    if "SIMULATOR_PORT" not in os.environ and not _free(simulator_port):
        simulator_port = _any_free_port()
    if not _free(port):
        raise SystemExit(f"Port {port} is taken; run `make run PORT=5050` (or another free port).")
    env, use_stripe = environment(port, simulator_port)
    write_dotenv(env, use_stripe)
    children: list[subprocess.Popen[bytes]] = []

    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()

    def terminate(*_: object) -> None:
        stop()
        sys.exit(0)

    signal.signal(signal.SIGTERM, terminate)
    try:
        simulator = None
        if not use_stripe:
            if not _free(simulator_port):
                raise SystemExit(
                    f"Port {simulator_port} is taken; set SIMULATOR_PORT to a free port."
                )
            # Started first: it boots while the database is migrated.
            simulator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devtools.simulator",
                    "--port",
                    str(simulator_port),
                    "--state",
                    str(INSTANCE / "simulator.pickle"),
                    "--webhook-url",
                    f"{env['BASE_URL']}/webhooks/stripe",
                    "--webhook-secret",
                    env["STRIPE_WEBHOOK_SECRET"],
                ],
                cwd=ROOT,
                env=env,
            )
            children.append(simulator)
        # One process for both (each app start costs seconds on a small machine).
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", "demo", "seed", "--migrate"],
            env=env,
            cwd=ROOT,
            check=True,
        )
        if simulator is not None:
            _wait_for(simulator_port, simulator, "the Stripe simulator")
        # --preload: the app is imported once and the workers fork from it.
        web_env = {"GUNICORN_CMD_ARGS": "--preload", **env}
        web = subprocess.Popen(
            ["bash", "-c", "exec " + _procfile_command("web")],
            cwd=ROOT,
            env={**web_env, "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"},
        )
        children.append(web)
        _wait_for(port, web, "the web server")
        _first_request(port)
        print(banner(env, use_stripe), flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [str(c.args) for c in children if c.poll() is not None]
        raise SystemExit(f"stopped: a process exited ({', '.join(failed)})")
    except KeyboardInterrupt:
        print("\nStopping…", flush=True)
    finally:
        stop()


def banner(env: dict[str, str], use_stripe: bool) -> str:
    lines = [
        "",
        "Donations is running.",
        f"  Support page:   {env['BASE_URL']}/support",
        f"  Health:         {env['BASE_URL']}/healthz",
        f"  Database:       {env['DATABASE_URL']}",
        "  Settings:       .env (for `flask --app wsgi …` in this checkout)",
    ]
    if use_stripe:
        lines.append("  Payments:       Stripe (your keys)")
    else:
        lines += [
            f"  Payments:       simulated (Stripe simulator at {env['STRIPE_API_BASE']})",
            "  Test cards:     4242 4242 4242 4242 succeeds",
            "                  4000 0025 0000 3155 asks for 3D Secure",
            "                  4000 0000 0000 0002 is declined (any future expiry, any CVC)",
        ]
    mail = f"SMTP {env['SMTP_URL']}" if env.get("SMTP_URL") else f"written to {env['MAIL_DIR']}"
    lines += [
        f"  Mail:           {mail}",
        "Press Ctrl-C to stop.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

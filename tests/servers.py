"""Real Mosquitto and InfluxDB servers for tests, each on free loopback ports in its own dir.

The servers are the Debian packages (``make test`` installs them). Every server writes its
config, data and log under the directory it is given, so tests never touch system services
(a system Mosquitto may be listening on 1883; these never use it).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import httpx

__all__ = [
    "InfluxServer",
    "MosquittoServer",
    "PostgresServer",
    "ServerError",
    "find_binary",
    "free_port",
    "wait_until",
]

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "mosquitto")
INFLUXD_CANDIDATES = ("/usr/bin/influxd", "influxd")


class ServerError(RuntimeError):
    """A test server binary is missing or the server did not come up."""


def find_binary(candidates: tuple[str, ...], package: str) -> str:
    for name in candidates:
        path = name if os.path.isabs(name) else shutil.which(name)
        if path and os.access(path, os.X_OK):
            return path
    raise ServerError(
        f"{candidates[-1]} is not installed (Debian package {package!r}); "
        "run `make test`, which installs the servers the integration tests need"
    )


def free_port() -> int:
    # Racy in theory (someone may take the port before the server binds it), but the window is
    # tiny and a clash shows up as a clear start-up failure with the server's log.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


async def wait_until(
    condition: Callable[[], Awaitable[bool] | bool],
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> None:
    """Poll ``condition`` until it is true; raise AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


class _Server:
    """Process management shared by both servers: start, wait for ready, stop, restart."""

    name = "server"
    start_timeout = 30.0

    def __init__(self, tmpdir: Path | str) -> None:
        self.dir = Path(tmpdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / f"{self.name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._log_start = 0  # where this run's part of the log begins

    # Subclasses fill these in.
    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _ports(self) -> list[int]:
        raise NotImplementedError

    def _popen_kwargs(self) -> dict[str, Any]:
        # Extra subprocess.Popen arguments (PostgresServer runs as an unprivileged user).
        return {}

    def _check_ports_free(self) -> None:
        # Without this, a server that fails to bind would look ready whenever something else
        # answers on its port (a leftover server, another test run).
        for port in self._ports():
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError as exc:
                    raise ServerError(
                        f"{self.name}: port {port} is already in use ({exc.strerror}); "
                        "is an earlier server still running?"
                    ) from exc

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        if self.running:
            return
        self._reap()
        self._check_ports_free()
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        # Append so that a restart keeps the earlier run's log for post-mortems.
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self._proc = subprocess.Popen(
            self._command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
            start_new_session=True,  # a Ctrl-C in the test run must not hit the server first
            **self._popen_kwargs(),
        )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._reap()
                raise ServerError(
                    f"{self.name} exited with code {code} during start-up; "
                    f"log {self.log_path}:\n{_tail(self.log_path)}"
                )
            if self._ready() and self._proc.poll() is None:
                return
            if time.monotonic() >= deadline:
                self.kill()
                raise ServerError(
                    f"{self.name} did not become ready within {self.start_timeout:g} s; "
                    f"log {self.log_path}:\n{_tail(self.log_path)}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if the server has not exited within ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._reap()

    def kill(self) -> None:
        """SIGKILL: a crash or power cut from the server's point of view."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._reap()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(0)
            if self._proc.returncode is not None:
                self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    def _log_since_start(self) -> bytes:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return f.read()
        except OSError:
            return b""

    def __enter__(self) -> _Server:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class MosquittoServer(_Server):
    """Mosquitto on a free loopback port, anonymous, persistent, with roomy queues."""

    name = "mosquitto"
    start_timeout = 15.0

    def __init__(self, tmpdir: Path | str, port: int | None = None) -> None:
        super().__init__(tmpdir)
        self.binary = find_binary(MOSQUITTO_CANDIDATES, "mosquitto")
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.conf_path = self.dir / "mosquitto.conf"
        self.persistence_dir = self.dir / "persistence"
        self.persistence_dir.mkdir(exist_ok=True)
        self._write_config()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def _write_config(self) -> None:
        # Run as root, Mosquitto drops to user "mosquitto", which cannot write into a pytest
        # tmp dir; `user root` keeps it as the invoking user. As non-root the option is ignored.
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf_path.write_text(
            f"{user}"
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.persistence_dir}/\n"
            # The default (1000) silently drops messages for a slow subscriber; tests that
            # push bursts must see broker limits only where they ask for them.
            "max_queued_messages 100000\n"
            "max_inflight_messages 100\n"
            # A file log is flushed line by line; stdout into a file is block-buffered and
            # loses its tail when the broker is killed. Start-up errors still go to stderr.
            f"log_dest file {self.log_path}\n"
            "log_type error\n"
            "log_type warning\n"
            "log_type notice\n"
            "log_type information\n"
            "connection_messages true\n"
            "log_timestamp_format %Y-%m-%dT%H:%M:%S\n",
            encoding="utf-8",
        )

    def _command(self) -> list[str]:
        return [self.binary, "-c", str(self.conf_path)]

    def _ports(self) -> list[int]:
        return [self.port]

    def _ready(self) -> bool:
        if b" running" not in self._log_since_start():
            return False
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                return True
        except OSError:
            return False


class InfluxServer(_Server):
    """InfluxDB 1.x on free loopback ports, auth off, no reporting, everything under ``tmpdir``."""

    name = "influxd"
    start_timeout = 60.0

    def __init__(
        self, tmpdir: Path | str, port: int | None = None, rpc_port: int | None = None
    ) -> None:
        super().__init__(tmpdir)
        self.binary = find_binary(INFLUXD_CANDIDATES, "influxdb")
        self.port = port or free_port()
        self.rpc_port = rpc_port or free_port()
        self.host = "127.0.0.1"
        self.conf_path = self.dir / "influxdb.conf"
        self._write_config()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _write_config(self) -> None:
        d = self.dir
        self.conf_path.write_text(
            f"""\
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"

[meta]
  dir = "{d / "meta"}"

[data]
  dir = "{d / "data"}"
  wal-dir = "{d / "wal"}"
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "127.0.0.1:{self.port}"
  auth-enabled = false
  log-enabled = false
  write-tracing = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true

[continuous_queries]
  enabled = false
""",
            encoding="utf-8",
        )

    def _command(self) -> list[str]:
        return [self.binary, "run", "-config", str(self.conf_path)]

    def _ports(self) -> list[int]:
        return [self.port, self.rpc_port]

    def _ready(self) -> bool:
        try:
            with httpx.Client(timeout=1.0) as client:
                return client.get(f"{self.url}/ping").status_code == 204
        except httpx.HTTPError:
            return False


def _postgres_bindir() -> Path:
    """The newest Debian PostgreSQL server binaries (``/usr/lib/postgresql/<v>/bin``)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: [int(x) if x.isdigit() else 0 for x in p.parent.parent.name.split(".")],
    )
    if not found:
        raise ServerError(
            "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin (Debian package "
            "'postgresql'); run `make test`, whose system-deps installs it"
        )
    return found[-1].parent


class PostgresServer(_Server):
    """A private PostgreSQL cluster on a free loopback port, trust auth for ``postgres``.

    Never the machine's server: its own ``initdb`` in a temp dir, stopped and restarted at
    will. As root it runs as the ``postgres`` user (PostgreSQL refuses root), in a data dir
    under /tmp that the user owns (pytest's temp dirs are root-only); ``close()`` removes it.
    ``crash()`` is an immediate shutdown (SIGQUIT: no checkpoint, crash recovery at the next
    start), ``restart(immediate=True)`` a crash followed by a start on the same port.
    """

    name = "postgres"
    start_timeout = 60.0

    def __init__(self, tmpdir: Path | str, port: int | None = None) -> None:
        super().__init__(tmpdir)
        self.bindir = _postgres_bindir()
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self._user = _unprivileged_user()
        self.data_root = Path(tempfile.mkdtemp(prefix="sw-pg-"))
        self.data_dir = self.data_root / "data"
        if self._user is not None:
            os.chown(self.data_root, self._user.pw_uid, self._user.pw_gid)
        self._initdb()

    @property
    def url(self) -> str:
        """An admin URL (role ``postgres``, database ``postgres``)."""
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def _initdb(self) -> None:
        result = subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **self._popen_kwargs(),
        )
        if result.returncode != 0:
            raise ServerError(f"initdb failed ({result.returncode}):\n{result.stderr[-2000:]}")

    def _popen_kwargs(self) -> dict[str, Any]:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _command(self) -> list[str]:
        return [
            str(self.bindir / "postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.data_root),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            "fsync=off",  # a crash of the server process, not of the machine: no need
            "-c",
            "max_connections=50",
        ]

    def _ports(self) -> list[int]:
        return [self.port]

    def _ready(self) -> bool:
        result = subprocess.run(
            [str(self.bindir / "pg_isready"), "-q", "-h", self.host, "-p", str(self.port)],
            capture_output=True,
            timeout=5,
            check=False,
        )
        return result.returncode == 0

    def crash(self) -> None:
        """Immediate shutdown (``pg_ctl stop -m immediate``): every backend quits at once."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._reap()

    def restart(self, immediate: bool = False) -> None:
        if immediate:
            self.crash()
        else:
            self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its data dir."""
        self.stop()
        shutil.rmtree(self.data_root, ignore_errors=True)


def _unprivileged_user() -> pwd.struct_passwd | None:
    """Who runs PostgreSQL: the invoking user unless it is root (then ``postgres``, or
    ``nobody`` when that user does not exist)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServerError("running as root, and neither user 'postgres' nor 'nobody' exists")

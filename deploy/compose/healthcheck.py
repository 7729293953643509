"""Container health checks of the Shelterwatch image (docker-compose.yml ``healthcheck``).

Installed in the image as /usr/local/lib/shelterwatch/healthcheck.py; the standard library
only, so a check costs a fraction of a second and imports nothing of the services.

    healthcheck.py http URL         the URL answers 200 (the control service's /api/v1/health)
    healthcheck.py tcp HOST PORT    something accepts connections there (the simulator)
    healthcheck.py peer PORT        this container holds an established TCP connection to a
                                    server on PORT: a gateway or collector linked to the broker
    healthcheck.py auto             the check of the role this container runs, found in the
                                    command lines of its processes, on the default ports or
                                    those set by SHELTERWATCH_PORT, SHELTERWATCH_MQTT__PORT and
                                    SHELTERWATCH_BASE_PORT; any other command counts as healthy
                                    (the image's HEALTHCHECK; the compose file is explicit)

Exit status 0 means healthy, 1 unhealthy (Docker's convention), 2 a usage error.
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from collections.abc import Iterable
from pathlib import Path

TIMEOUT_S = 5.0
# /proc/net/tcp's state column: 01 is ESTABLISHED.
_ESTABLISHED = "01"
_PROC_TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def check_http(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def check_tcp(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            return True
    except OSError:
        return False


def established_remote_ports(lines: Iterable[str]) -> set[int]:
    """Remote ports of the ESTABLISHED connections in a /proc/net/tcp{,6} table."""
    ports: set[int] = set()
    for line in lines:
        fields = line.split()
        # sl local_address rem_address st ...; the header's third field is "rem_address".
        if len(fields) < 4 or fields[3] != _ESTABLISHED or ":" not in fields[2]:
            continue
        try:
            ports.add(int(fields[2].rsplit(":", 1)[1], 16))
        except ValueError:
            continue
    return ports


def check_peer(port: int) -> bool:
    # A container has its own network namespace, so these tables list its sockets only.
    for table in _PROC_TABLES:
        try:
            lines = table.read_text(encoding="ascii").splitlines()[1:]
        except OSError:
            continue
        if port in established_remote_ports(lines):
            return True
    return False


def running_role(cmdlines: Iterable[list[str]]) -> str | None:
    """The service a `shelterwatch <role> ...` command line among ``cmdlines`` runs."""
    for args in cmdlines:
        names = [Path(a).name for a in args]
        if "shelterwatch" in names:
            rest = names[names.index("shelterwatch") + 1 :]
            for role in ("control", "gateway", "collector", "sim"):
                if role in rest[:1]:
                    return role
    return None


def _cmdlines() -> list[list[str]]:
    # PID 1 may be an init (compose `init: true`) with the service as its child.
    found = []
    for entry in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            found.append(entry.read_bytes().decode(errors="replace").split("\0"))
        except OSError:
            continue
    return found


def check_auto() -> bool:
    env = os.environ.get
    match running_role(_cmdlines()):
        case "control":
            port = env("SHELTERWATCH_PORT", "8000")
            return check_http(f"http://127.0.0.1:{port}/api/v1/health")
        case "gateway" | "collector":
            return check_peer(int(env("SHELTERWATCH_MQTT__PORT", "1883")))
        case "sim":
            return check_tcp("127.0.0.1", int(env("SHELTERWATCH_BASE_PORT", "15020")))
        case _:
            return True


def main(argv: list[str]) -> int:
    match argv:
        case ["http", url]:
            return 0 if check_http(url) else 1
        case ["tcp", host, port] if port.isdigit():
            return 0 if check_tcp(host, int(port)) else 1
        case ["peer", port] if port.isdigit():
            return 0 if check_peer(int(port)) else 1
        case ["auto"]:
            return 0 if check_auto() else 1
        case _:
            print(__doc__, file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

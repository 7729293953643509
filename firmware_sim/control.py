"""Run-time fault control of a running simulator: a tiny JSON-over-HTTP endpoint and its client.

The simulator process serves it on 127.0.0.1 only (``control_port``, default 15019), so
``shelterwatch sim fault shelter-01 seal_leak`` from another shell can reach the fleet. It is
HTTP/1.1 with one request per connection, written on asyncio streams: the simulator needs
no web framework for three routes, and curl works against it too.

    GET    /faults                      active faults, scenarios and sites
    POST   /faults                      {"site": .., "scenario": .., "options": {..}}: inject
    DELETE /faults/<site>/<scenario>    repair

Answers are JSON; an error is ``{"error": "<message>"}`` with status 400 (a request the fleet
refuses: unknown site, scenario or option, already active, not active), 404 or 405.
There is no authentication: anyone on this machine may break the simulated devices, which is
the point of a simulator, and nothing beyond the machine can reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, unquote, urlsplit

from firmware_sim.fleet import Fleet
from firmware_sim.scenarios import SCENARIOS, ScenarioError
from shelterwatch.errors import ConnectError, ShelterwatchError

__all__ = [
    "DEFAULT_CONTROL_PORT",
    "DEFAULT_CONTROL_URL",
    "FaultClient",
    "FaultRefused",
    "FaultServer",
]

log = logging.getLogger(__name__)

DEFAULT_CONTROL_PORT = 15019
DEFAULT_CONTROL_URL = f"http://127.0.0.1:{DEFAULT_CONTROL_PORT}"
_HOST = "127.0.0.1"  # never anything else: the endpoint has no login
_MAX_BODY = 64 * 1024
_READ_TIMEOUT_S = 5.0
_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    404: "Not Found",
    405: "Not Allowed",
    500: "Internal Server Error",
}


class FaultRefused(ShelterwatchError):
    """The simulator answered, and refused the request; the message says why."""


class _BadRequest(Exception):
    pass


class FaultServer:
    """``async with FaultServer(fleet, port):`` serves fault control for ``fleet``.

    ``port=0`` picks a free port; ``port`` and ``url`` tell which after ``start``.
    """

    def __init__(self, fleet: Fleet, port: int = DEFAULT_CONTROL_PORT) -> None:
        self.fleet = fleet
        self.port = port
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self.port}"

    async def start(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._connection, _HOST, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()
        # Python 3.11's wait_closed does not wait for open connections: end them here, so no
        # handler outlives the fleet it works on.
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            try:
                method, path, body = await asyncio.wait_for(_read_request(reader), _READ_TIMEOUT_S)
                status, answer = await self._dispatch(method, path, body)
            except (_BadRequest, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
                status, answer = 400, {"error": f"bad request: {exc or type(exc).__name__}"}
            except Exception as exc:
                # For example a server that cannot listen again on its port after comm_loss.
                log.exception("fault control request failed")
                status, answer = 500, {"error": f"the simulator failed: {exc}"}
            payload = json.dumps(answer).encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + payload)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client left, or the server is stopping: nobody to answer
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _dispatch(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        parts = [unquote(p) for p in path.split("?", 1)[0].strip("/").split("/")]
        if parts[0] != "faults" or len(parts) not in (1, 3):
            return 404, {"error": f"no route {path}"}
        try:
            if len(parts) == 1 and method == "GET":
                return 200, self.status()
            if len(parts) == 1 and method == "POST":
                request = _json_object(body)
                site, scenario = request.get("site"), request.get("scenario")
                options = request.get("options") or {}
                if not isinstance(site, str) or not isinstance(scenario, str):
                    raise _BadRequest('"site" and "scenario" must be strings')
                if not isinstance(options, dict):
                    raise _BadRequest('"options" must be an object')
                active = await self.fleet.fault(site, scenario, **options)
                return 201, {"fault": active.as_dict()}
            if len(parts) == 3 and method == "DELETE":
                await self.fleet.repair(parts[1], parts[2])
                return 200, {"repaired": {"site": parts[1], "scenario": parts[2]}}
        except ScenarioError as exc:
            return 400, {"error": str(exc)}
        return 405, {"error": f"{method} is not allowed on {path}"}

    def status(self) -> dict[str, Any]:
        return {
            "faults": [f.as_dict() for f in self.fleet.faults],
            "scenarios": {
                s.name: {
                    "site_kinds": sorted(s.kinds),
                    "effect": s.effect,
                    "repair": s.repair,
                    "options": dict(s.options),
                }
                for s in SCENARIOS.values()
            },
            "sites": self.fleet.sites,
        }


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, bytes]:
    request_line = (await reader.readline()).decode("latin-1").split()
    if len(request_line) != 3 or not request_line[2].startswith("HTTP/"):
        raise _BadRequest("not an HTTP request")
    method, path = request_line[0].upper(), request_line[1]
    length = 0
    while True:
        line = (await reader.readline()).decode("latin-1").strip()
        if not line:
            break
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if not 0 <= length <= _MAX_BODY:
        raise _BadRequest(f"body of {length} bytes")
    body = await reader.readexactly(length) if length else b""
    return method, path, body


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except json.JSONDecodeError as exc:
        raise _BadRequest(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _BadRequest("body must be a JSON object")
    return data


class FaultClient:
    """Blocking client of a simulator's fault control, for the command line."""

    def __init__(self, url: str = DEFAULT_CONTROL_URL, timeout_s: float = 10.0) -> None:
        parts = urlsplit(url if "//" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the simulator's control URL must be http://host:port, got {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or DEFAULT_CONTROL_PORT
        self.timeout_s = timeout_s

    def status(self) -> dict[str, Any]:
        return self._request("GET", "/faults")

    def fault(self, site: str, scenario: str, options: dict[str, object]) -> dict[str, Any]:
        body = {"site": site, "scenario": scenario, "options": options}
        answer = self._request("POST", "/faults", body)
        fault = answer.get("fault")
        assert isinstance(fault, dict), answer
        return fault

    def repair(self, site: str, scenario: str) -> None:
        self._request("DELETE", f"/faults/{quote(site, safe='')}/{quote(scenario, safe='')}")

    def _request(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        # http.client, not urllib: urllib would send a loopback request through http_proxy.
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:
            raise ConnectError(
                f"the simulator is not reachable at {self.url} ({exc}); is `shelterwatch sim` "
                "running, and is this its control_port?"
            ) from exc
        finally:
            conn.close()
        try:
            answer = json.loads(raw)
        except json.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise FaultRefused(f"{self.url} did not answer like a simulator: {raw[:200]!r}")
        if response.status >= 300:
            raise FaultRefused(str(answer.get("error", f"HTTP {response.status}")))
        return answer

"""Two ASGI middlewares that keep bad moments and bad input from becoming 500s.

``DatabaseUnavailable``: when the control database cannot be reached (PostgreSQL stopped,
restarting, or a connection cut mid-request), a request that needs it is answered 503 with a
message saying so, instead of a 500 "Internal Server Error". It wraps the audit middleware,
whose row for a mutating request cannot be written either. Other database errors (a bug, a
constraint) stay 500s.

``BodySizeLimit``: a request body over the limit is refused with 413 before the application
parses it (by ``Content-Length`` when given, else while it streams in): a 10 MB JSON body is
read and thrown away (so that the client sees the answer), never buffered, parsed, validated
or audited in full. The siren inventory import, whose file
may be up to 10 MB and arrives JSON-escaped, has a larger limit of its own.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "DATABASE_UNREACHABLE",
    "MAX_BODY_BYTES",
    "BodySizeLimit",
    "DatabaseUnavailable",
    "is_database_unreachable",
]

log = logging.getLogger(__name__)

DATABASE_UNREACHABLE = (
    "the control database is unreachable; try again in a moment. A change sent just before "
    "this may or may not have been recorded: look before repeating it"
)
# Every request body: the largest legitimate one (a group of 10,000 sirens) is about 700 KB.
MAX_BODY_BYTES = 1024 * 1024
# The siren inventory import: a 10 MB file (its own limit), JSON-escaped.
LARGER_BODIES: Mapping[str, int] = {
    "/api/v1/sirens/import": 24 * 1024 * 1024,
    # An upstream CAP message: up to 256 KiB of XML, which JSON may escape six-fold.
    "/api/v1/activations/from-cap": 2 * 1024 * 1024,
}


def is_database_unreachable(exc: BaseException) -> bool:
    """The database cannot be reached, as opposed to refusing a statement."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, DBAPIError) and (
            e.connection_invalidated or isinstance(e, OperationalError | InterfaceError)
        ):
            return True
        # Refused, reset or aborted connections (asyncpg raises these unwrapped on connect),
        # and the pool finding no connection in time.
        if isinstance(e, ConnectionError | PoolTimeout):
            return True
        if type(e).__module__.startswith("asyncpg") and type(e).__name__ in {
            "CannotConnectNowError",  # starting up, shutting down, in recovery
            "ConnectionDoesNotExistError",
            "ConnectionFailureError",
            "AdminShutdownError",
            "CrashShutdownError",
        }:
            return True
        if isinstance(e, BaseExceptionGroup):
            stack.extend(e.exceptions)
        for linked in (e.__cause__, e.__context__):
            if linked is not None:
                stack.append(linked)
    return False


async def _answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class DatabaseUnavailable:
    """503 with ``DATABASE_UNREACHABLE`` for a request that failed on an unreachable database."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started or not is_database_unreachable(exc):
                raise
            log.warning(
                "%s %s: 503, the control database is unreachable (%s: %s)",
                scope.get("method"),
                scope.get("path"),
                type(exc).__name__,
                exc,
            )
            await _answer(send, 503, DATABASE_UNREACHABLE, [(b"retry-after", b"5")])


# An HTTP/1.1 client that is still sending when the answer comes and the connection closes
# sees a broken connection, not the 413: so up to this much is read (and thrown away) first.
# Past it, the connection is just closed.
_DRAIN_BYTES = 64 * 1024 * 1024


async def _drain(receive: Receive) -> None:
    drained = 0
    while drained <= _DRAIN_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


class _TooLarge(HTTPException):
    # An HTTPException, so that FastAPI, reading the body, passes it on as it is (it turns
    # other errors there into a 400), and the audit row records the 413.
    def __init__(self, detail: str) -> None:
        super().__init__(413, detail, headers={"connection": "close"})


class BodySizeLimit:
    """413 for a request body over ``limit`` bytes (``LARGER_BODIES`` for their paths)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: int = MAX_BODY_BYTES,
        larger: Mapping[str, int] = LARGER_BODIES,
    ) -> None:
        self.app = app
        self.limit = limit
        self.larger = larger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.limit)
        detail = f"the request body is larger than this service accepts ({limit} bytes)"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await _drain(receive)
                    await _answer(send, 413, detail, [(b"connection", b"close")])
                    return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if message.get("more_body", False):
                        await _drain(receive)
                    raise _TooLarge(detail)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await _answer(send, 413, detail, [(b"connection", b"close")])

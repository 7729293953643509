"""ASGI middleware: one audit row for every mutating HTTP request (POST, PUT, PATCH, DELETE).

The row is written when the response starts, before its status line reaches the client: a
client that sees an answer knows the request was recorded, and if the audit write fails the
client gets a 500 instead of a success nobody recorded. A request that raises before
answering is recorded with result 500.

- actor: ``request.state.user`` (its ``username``) as set by authentication, else "anonymous";
- action: ``http.<METHOD> <route path template>``, e.g. ``http.POST /api/v1/users/{username}``;
- target: the path parameters, ``name=value`` joined by ``,`` (the raw path when no route
  matched);
- params: the JSON or form body with secret-named keys masked (control.audit.redact);
- result: the response status code.

Wire it with ``app.add_middleware(AuditMiddleware)``; it finds the Database in the lifespan
state under ``db``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control.audit.redact import body_params
from control.audit.trail import append_audit
from control.db import Database

__all__ = ["MUTATING_METHODS", "AuditMiddleware"]

_log = logging.getLogger(__name__)

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Bodies above this are recorded by size only: the trail is not a store for uploads.
MAX_RECORDED_BODY = 64 * 1024


class AuditMiddleware:
    def __init__(self, app: ASGIApp, *, max_body: int = MAX_RECORDED_BODY) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in MUTATING_METHODS:
            await self.app(scope, receive, send)
            return
        body = _BodyCapture(receive, self.max_body)
        recorded = False

        async def send_recorded(message: Message) -> None:
            nonlocal recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                await self._record(scope, body, str(message["status"]))
            await send(message)

        try:
            await self.app(scope, body.receive, send_recorded)
        except Exception:
            if not recorded:
                recorded = True
                await self._record(scope, body, "500")
            raise

    async def _record(self, scope: Scope, body: _BodyCapture, result: str) -> None:
        db = scope.get("state", {}).get("db")
        if not isinstance(db, Database):
            # Refuse rather than let mutations through unrecorded.
            raise RuntimeError("AuditMiddleware needs the Database in the lifespan state as 'db'")
        route = scope.get("route")
        template = getattr(route, "path", None)
        path_params: Mapping[str, object] = scope.get("path_params", {})
        if isinstance(template, str):
            target = ",".join(f"{k}={v}" for k, v in path_params.items())
        else:
            template, target = "(no route)", str(scope.get("path", ""))
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        content_type = headers.get("content-type", b"").decode("latin-1")
        try:
            await append_audit(
                db,
                actor=_actor(scope),
                action=f"http.{scope['method']} {template}",
                target=target,
                params=body_params(body.captured, content_type, complete=body.complete),
                result=result,
            )
        except Exception:
            _log.exception("could not record %s %s in the audit trail", scope["method"], template)
            raise


def _actor(scope: Scope) -> str:
    user = scope.get("state", {}).get("user")
    if user is None:
        return "anonymous"
    if isinstance(user, str):
        return user
    username = getattr(user, "username", None)
    return username if isinstance(username, str) else str(user)


class _BodyCapture:
    """Passes the request body through to the app and keeps a copy of up to ``limit`` bytes.

    Only what the app itself reads is seen: reading the body here after the app answered could
    wait for a client that has nothing more to send.
    """

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self.complete = True

    @property
    def captured(self) -> bytes:
        return b"".join(self._chunks)

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            chunk: bytes = message.get("body", b"")
            if self._size + len(chunk) <= self._limit:
                self._chunks.append(chunk)
            else:
                self.complete = False
            self._size += len(chunk)
        return message

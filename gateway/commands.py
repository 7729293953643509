"""Command execution: verify, refuse what must be refused, then write or run sirens.

A command reaches a device only when it is signed by the control service's key, has not
expired, was issued no later than the clock skew allows, has not been seen before (the replay
cache survives restarts), names a known action, and its parameters fit it. Anything else is
answered ``rejected`` or ``expired`` with the reason, and nothing is written.

``write``: answered ``accepted``, then ``running``; the write goes through the device's hub
(serialised with polling), then the gateway reads back until the device shows the requested
state: ``succeeded`` only then, ``failed`` with what it read otherwise.

``siren.activate`` and ``siren.cancel`` pass the same checks and go to the siren runner
(``gateway.sirens``), which answers per siren and for the whole command. Commands run to the
end even if the uplink drops; their outcomes are published when it is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.sirens import ActivationLedger, SirenRunner, SirenSettings
from gateway.sirens.ledger import create_tables
from shelterwatch import codec
from shelterwatch.contract import (
    SIREN_ACTIVATE,
    SIREN_CANCEL,
    CommandAck,
    CommandRequest,
    CommandState,
    Value,
)
from shelterwatch.errors import CodecError, ConfigError, TransportError
from shelterwatch.profiles import Point, Profile, RegisterKind
from shelterwatch.signing import load_public_key, verify_command

if TYPE_CHECKING:
    from gateway.hub import ModbusHub
    from gateway.settings import DeviceConfig

__all__ = ["CommandRunner", "CommandSettings", "Target"]

log = logging.getLogger(__name__)

ACTIONS = ("write", SIREN_ACTIVATE, SIREN_CANCEL)
T = TypeVar("T")


class CommandSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The control service's Ed25519 public key (base64 of 32 raw bytes). Without it every
    # command is refused: a gateway never executes what it cannot authenticate.
    public_key: str | None = None
    # Default: data/<gateway_id>-commands.db
    replay_cache_path: Path | None = None
    max_clock_skew_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    max_lifetime_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 86400.0
    # How long a write may take to show on the device when the command does not say.
    verify_timeout_s: Annotated[float, Field(gt=0, le=600)] = 5.0

    @field_validator("public_key")
    @classmethod
    def _key_loads(cls, value: str | None) -> str | None:
        if value:
            try:
                load_public_key(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from exc
        return value


@dataclass(frozen=True, slots=True)
class Target:
    config: DeviceConfig
    profile: Profile
    hub: ModbusHub


@dataclass(frozen=True, slots=True)
class _Plan:
    command: CommandRequest
    target: Target
    point: Point
    words: list[int]
    verify_point: Point
    verify_value: Value
    verify_timeout_s: float


@dataclass(frozen=True, slots=True)
class _SirenPlan:
    command: CommandRequest
    activation: str = ""  # for a cancel


class _Refused(Exception):
    def __init__(self, state: CommandState, detail: str) -> None:
        super().__init__(detail)
        self.state = state
        self.detail = detail


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class CommandRunner:
    def __init__(
        self,
        settings: CommandSettings,
        cache_path: Path,
        targets: dict[str, Target],
        send_ack: Callable[[CommandAck], None],
        sirens: SirenSettings | None = None,
    ) -> None:
        self.settings = settings
        self._targets = targets
        self._send_ack = send_ack
        self._cache_path = cache_path
        self._key = load_public_key(settings.public_key) if settings.public_key else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commands")
        self._db: sqlite3.Connection | None = None
        self._queue: asyncio.Queue[_Plan | _SirenPlan] = asyncio.Queue()
        self._ledger = ActivationLedger()
        self.sirens = SirenRunner(
            targets, sirens or SirenSettings(), send_ack, self._ledger, self._persist
        )
        self.received = 0
        self.refused = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self._run(self._open)
        if self._key is None:
            log.warning(
                "commands.public_key is not set: every command will be refused; set it to the "
                "control service's public key to allow commands"
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self._run(self._close)
        finally:
            self._executor.shutdown(wait=True)

    def _open(self) -> None:
        try:
            self._cache_path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._cache_path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, received_ms INTEGER "
                "NOT NULL, expires_ms INTEGER NOT NULL)"
            )
            create_tables(db)
            self._ledger.load(db)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                f"cannot open the command replay cache {self._cache_path}: {exc}"
            ) from exc
        self._db = db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _persist(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        def call() -> None:
            if self._db is not None:
                fn(self._db)

        await self._run(call)

    # -- intake ---------------------------------------------------------------------------------

    async def submit(self, payload: bytes) -> None:
        """Handle one message from the command topic. Never raises."""
        self.received += 1
        try:
            command = CommandRequest.model_validate_json(payload)
        except ValidationError as exc:
            self.refused += 1
            cmd_id = _loose_id(payload)
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "payload"
            detail = f"malformed command ({where}: {first['msg']})"
            log.warning("refused a command (%s): %s", cmd_id or "no id", detail)
            if cmd_id:
                self._ack(cmd_id, CommandState.REJECTED, detail)
            return
        try:
            plan = self._check(command)
            if not await self._run(lambda: self._remember(command)):
                raise _Refused(CommandState.REJECTED, "replayed: this command id was seen before")
        except _Refused as refusal:
            self.refused += 1
            log.warning("refused command %s from %s: %s", command.id, command.actor, refusal.detail)
            self._ack(command.id, refusal.state, refusal.detail)
            return
        log.info(
            "command %s from %s: %s %s %s%s",
            command.id,
            command.actor,
            command.action,
            command.device or "",
            dict(command.params),
            f" {command.siren.model_dump(exclude_none=True)}" if command.siren else "",
        )
        self._ack(command.id, CommandState.ACCEPTED, "")
        self._queue.put_nowait(plan)

    def _check(self, command: CommandRequest) -> _Plan | _SirenPlan:
        if self._key is None:
            raise _Refused(CommandState.REJECTED, "this gateway has no command key configured")
        if not command.sig:
            raise _Refused(CommandState.REJECTED, "unsigned command")
        if not verify_command(command, self._key):
            raise _Refused(CommandState.REJECTED, "bad signature")
        now = _now_ms()
        s = self.settings
        if command.ts > now + s.max_clock_skew_s * 1000:
            raise _Refused(
                CommandState.REJECTED,
                f"issued {(command.ts - now) / 1000:.0f} s in the future; check both clocks",
            )
        if command.expires <= now:
            raise _Refused(
                CommandState.EXPIRED, f"expired {(now - command.expires) / 1000:.1f} s ago"
            )
        if command.expires - command.ts > s.max_lifetime_s * 1000:
            raise _Refused(CommandState.REJECTED, "valid for longer than max_lifetime_s allows")
        if command.action == SIREN_ACTIVATE:
            if command.siren is None:
                raise _Refused(CommandState.REJECTED, "siren.activate needs a siren order")
            if command.siren.kind.value != "silent_test" and command.siren.signal is None:
                raise _Refused(CommandState.REJECTED, f"a {command.siren.kind} needs a signal")
            return _SirenPlan(command)
        if command.action == SIREN_CANCEL:
            activation = command.params.get("activation")
            if not isinstance(activation, str) or not activation:
                raise _Refused(CommandState.REJECTED, "siren.cancel needs params 'activation'")
            return _SirenPlan(command, activation)
        if command.device is None:
            raise _Refused(CommandState.REJECTED, f"{command.action} needs a device")
        target = self._targets.get(command.device)
        if target is None:
            raise _Refused(CommandState.REJECTED, f"unknown device {command.device!r}")
        if command.action not in ACTIONS:
            raise _Refused(
                CommandState.REJECTED,
                f"unknown action {command.action!r}; this gateway knows {', '.join(ACTIONS)}",
            )
        return self._plan_write(command, target)

    def _plan_write(self, command: CommandRequest, target: Target) -> _Plan:
        params = command.params
        name, value = params.get("point"), params.get("value")
        if not isinstance(name, str) or value is None:
            raise _Refused(CommandState.REJECTED, "write needs params 'point' and 'value'")
        point = _point(target.profile, name)
        if not point.writable:
            raise _Refused(CommandState.REJECTED, f"point {name!r} is not writable")
        try:
            words = codec.encode(point, value)
        except CodecError as exc:
            raise _Refused(CommandState.REJECTED, str(exc)) from exc
        verify_name = params.get("verify_point", name)
        if not isinstance(verify_name, str):
            raise _Refused(CommandState.REJECTED, "verify_point must be a point name")
        verify_point = _point(target.profile, verify_name)
        verify_value = params.get("verify_value", value) if "verify_point" in params else value
        timeout = params.get("verify_timeout_s", self.settings.verify_timeout_s)
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not (0 < timeout <= 600)
        ):
            raise _Refused(CommandState.REJECTED, "verify_timeout_s must be 0 < s <= 600")
        return _Plan(command, target, point, words, verify_point, verify_value, float(timeout))

    def _remember(self, command: CommandRequest) -> bool:
        """Record the id; False when it was there already (a replay)."""
        db = self._db
        assert db is not None
        now = _now_ms()
        # Ids whose command has long expired can go: a replay of them is refused as expired.
        db.execute("DELETE FROM seen WHERE expires_ms < ?", (now - 86_400_000,))
        cur = db.execute(
            "INSERT OR IGNORE INTO seen (id, received_ms, expires_ms) VALUES (?, ?, ?)",
            (command.id, now, command.expires),
        )
        return cur.rowcount == 1

    def _ack(self, cmd_id: str, state: CommandState, detail: str) -> None:
        self._send_ack(CommandAck(id=cmd_id, state=state, detail=detail, ts=_now_ms()))

    # -- execution ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Execute accepted commands until cancelled; each runs in its own task."""
        async with asyncio.TaskGroup() as tg:
            while True:
                plan = await self._queue.get()
                tg.create_task(self._execute(plan), name=f"command-{plan.command.id}")

    async def _execute(self, plan: _Plan | _SirenPlan) -> None:
        if isinstance(plan, _SirenPlan):
            if plan.command.action == SIREN_CANCEL:
                await self.sirens.cancel(plan.command, plan.activation)
            else:
                await self.sirens.activate(plan.command)
            return
        cmd, target = plan.command, plan.target
        self._ack(cmd.id, CommandState.RUNNING, "")
        try:
            await self._write(plan)
            ok, got = await self._read_back(plan)
        except TransportError as exc:
            log.warning("command %s failed: %s", cmd.id, exc)
            self._ack(cmd.id, CommandState.FAILED, f"device did not take the write: {exc}")
            return
        except Exception as exc:
            # Every command gets an outcome, even when the gateway itself is at fault.
            log.exception("command %s: unexpected error", cmd.id)
            self._ack(cmd.id, CommandState.FAILED, f"gateway error: {exc!r}")
            return
        if ok:
            log.info("command %s succeeded: %s reads %r", cmd.id, plan.verify_point.name, got)
            self._ack(cmd.id, CommandState.SUCCEEDED, f"{plan.verify_point.name} reads {got!r}")
        else:
            detail = (
                f"{plan.verify_point.name} reads {got!r}, expected {plan.verify_value!r} "
                f"within {plan.verify_timeout_s:g} s"
            )
            log.warning("command %s failed: %s (device %s)", cmd.id, detail, target.config.id)
            self._ack(cmd.id, CommandState.FAILED, detail)

    async def _write(self, plan: _Plan) -> None:
        t, point = plan.target, plan.point
        address = t.config.wire_address(point.address)
        unit = t.config.unit_id
        if point.table is RegisterKind.COIL:
            await t.hub.write_coil(address, bool(plan.words[0]), unit)
        elif len(plan.words) == 1:
            await t.hub.write_register(address, plan.words[0], unit)
        else:
            await t.hub.write_registers(address, plan.words, unit)

    async def _read_back(self, plan: _Plan) -> tuple[bool, Value | None]:
        t, point = plan.target, plan.verify_point
        loop = asyncio.get_running_loop()
        deadline = loop.time() + plan.verify_timeout_s
        got: Value | None = None
        while True:
            raw = await t.hub.read(
                point.table, t.config.wire_address(point.address), point.words, t.config.unit_id
            )
            try:
                got = codec.decode(point, [int(w) for w in raw])
            except CodecError:
                got = None
            if got is not None and _matches(point, got, plan.verify_value):
                return True, got
            if loop.time() >= deadline:
                return False, got
            await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))


def _point(profile: Profile, name: str) -> Point:
    try:
        return profile.point(name)
    except KeyError:
        raise _Refused(
            CommandState.REJECTED, f"device profile {profile.name!r} has no point {name!r}"
        ) from None


def _matches(point: Point, got: Value, expected: Value) -> bool:
    if isinstance(got, bool) or isinstance(expected, bool) or isinstance(got, str):
        return got == expected
    if isinstance(expected, str) or not isinstance(got, int | float):
        return False
    # A scaled integer register holds the value to within half a step; floats to their
    # precision (float32 keeps about 7 digits).
    tolerance = abs(point.scale) / 2 if point.type.value.startswith(("int", "uint")) else 0.0
    return math.isclose(got, expected, rel_tol=1e-6, abs_tol=tolerance + 1e-9)


def _loose_id(payload: bytes) -> str | None:
    try:
        doc = json.loads(payload)
    except ValueError:
        return None
    cmd_id = doc.get("id") if isinstance(doc, dict) else None
    return cmd_id if isinstance(cmd_id, str) and 0 < len(cmd_id) <= 128 else None

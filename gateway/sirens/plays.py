"""The three ways a siren is run: a silent test, a signal the controller times, a signal the
gateway times. Each returns the siren's final outcome and its detail, from device feedback.

A play is stopped early only by its run's ``stop`` event (a signed cancel, or a preempting
activation): it then switches the siren off, confirms that by feedback, and ends
``cancelled``. A siren that does not answer at the start is retried for
``unreachable_after_s`` (never past the command's expiry), then reported ``unreachable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from gateway.errors import DeviceRefused
from gateway.sirens.controllers import Feedback, SirenController
from gateway.sirens.timer import sound_intervals
from shelterwatch.contract import SignalSpec, SirenOutcome
from shelterwatch.errors import CodecError, TransportError

__all__ = ["Result", "RunControl", "play_controller_timed", "play_gateway_timed", "silent_test"]

log = logging.getLogger(__name__)

Result = tuple[SirenOutcome, str]
T = TypeVar("T")
_RETRY_S = 0.25


@dataclass(eq=False)
class RunControl:
    """What a play sees of its run: the stop request, the start report and the deadlines."""

    siren: str
    started: Callable[[str], None]
    retry_until: float  # loop time: stop retrying an unreachable siren
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stop_reason: str = ""

    async def wait_stop_until(self, when: float) -> bool:
        """Sleep until loop time ``when``; True if a stop was requested meanwhile."""
        if self.stop.is_set():
            return True
        delay = when - asyncio.get_running_loop().time()
        if delay <= 0:
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self.stop.wait()
        return self.stop.is_set()


class Unreachable(Exception):
    pass


async def _retrying(run: RunControl, op: Callable[[], Awaitable[T]]) -> T:
    """Run ``op``, retrying transport errors until the run's retry deadline."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            return await op()
        except DeviceRefused:
            raise
        except TransportError as exc:
            if loop.time() + _RETRY_S >= run.retry_until or run.stop.is_set():
                raise Unreachable(str(exc)) from exc
            log.debug("siren %s: %s; retrying", run.siren, exc)
            await asyncio.sleep(_RETRY_S)


async def _stopped(run: RunControl, ctl: SirenController, elapsed_s: float) -> Result:
    try:
        fb = await _stop_hard(ctl)
    except TransportError as exc:
        return SirenOutcome.UNREACHABLE, f"{run.stop_reason}, but the stop was not confirmed: {exc}"
    if fb.ok:
        return (
            SirenOutcome.CANCELLED,
            f"{run.stop_reason}; stopped {elapsed_s:.1f} s into the signal",
        )
    return SirenOutcome.FAILED, f"{run.stop_reason}, but the stop was not confirmed: {fb.detail}"


async def _stop_hard(ctl: SirenController) -> Feedback:
    # A stop must get through even when the first try meets a busy or flaky link.
    last: Exception | None = None
    for _ in range(3):
        try:
            return await ctl.stop()
        except DeviceRefused:
            raise
        except TransportError as exc:
            last = exc
            await asyncio.sleep(0.1)
    assert last is not None
    raise last


async def silent_test(run: RunControl, ctl: SirenController) -> Result:
    try:
        result = await _retrying(run, lambda: ctl.silent_test(run.started))
    except Unreachable as exc:
        return SirenOutcome.UNREACHABLE, f"no answer from {ctl.where}: {exc}"
    except DeviceRefused as exc:
        return SirenOutcome.FAILED, f"the controller refused the self-test: {exc}"
    if run.stop.is_set():
        return SirenOutcome.CANCELLED, f"{run.stop_reason}; the self-test result is not used"
    if result.passed:
        return SirenOutcome.TEST_PASSED, result.detail
    if result.reason in ("not_started", "timeout"):
        return SirenOutcome.FAILED, result.detail
    return SirenOutcome.TEST_FAILED, result.detail


async def play_controller_timed(
    run: RunControl,
    ctl: SirenController,
    signal: SignalSpec,
    label: str,
    poll_s: float,
    tolerance_s: float,
) -> Result:
    """The controller plays the signal itself; the gateway starts it and watches its state."""
    loop = asyncio.get_running_loop()
    duration = signal.duration_s
    try:
        fb = await _retrying(run, lambda: ctl.play_builtin(label))
    except Unreachable as exc:
        return SirenOutcome.UNREACHABLE, f"no answer from {ctl.where}: {exc}"
    except DeviceRefused as exc:
        return SirenOutcome.FAILED, f"the controller refused signal {label}: {exc}"
    start = fb.since if fb.since is not None else loop.time()
    if not fb.ok:
        with contextlib.suppress(TransportError):
            await ctl.stop()
        return SirenOutcome.FAILED, f"the controller did not start {label}: {fb.detail}"
    run.started(f"{fb.detail} (timed by the controller)")
    end = start + duration
    lost: str | None = None
    while True:
        if await run.wait_stop_until(min(loop.time() + poll_s, end + tolerance_s + poll_s)):
            return await _stopped(run, ctl, loop.time() - start)
        try:
            state, status = await ctl.playing()
            lost = None
        except TransportError as exc:
            lost = str(exc)
            state, status = "", Feedback(True, "")
        elapsed = loop.time() - start
        if lost is None and not status.ok:
            if elapsed >= duration - tolerance_s:
                return SirenOutcome.SOUNDED, (
                    f"{signal.name} played for {duration:.1f} s (timed by the controller, "
                    f"confirmed by {ctl.evidence})"
                )
            return SirenOutcome.FAILED, (
                f"the controller stopped after {elapsed:.1f} s of {duration:.1f} s: {status.detail}"
            )
        if elapsed > duration + max(2.0, 4 * poll_s) + tolerance_s:
            if lost is not None:
                return SirenOutcome.UNREACHABLE, (
                    f"lost contact with {ctl.where} during the signal; its end is not "
                    f"confirmed: {lost}"
                )
            with contextlib.suppress(TransportError):
                await ctl.stop()
            return SirenOutcome.FAILED, (
                f"still {state} {elapsed - duration:.1f} s past the signal's end; stop sent"
            )


async def play_gateway_timed(run: RunControl, ctl: SirenController, signal: SignalSpec) -> Result:
    """The gateway switches the sound on and off per segment, on an absolute schedule."""
    loop = asyncio.get_running_loop()
    intervals = sound_intervals(signal)
    start = loop.time()
    for i, (on_at, off_at) in enumerate(intervals):
        if await run.wait_stop_until(start + on_at):
            return await _stopped(run, ctl, loop.time() - start)
        try:
            fb = await (_retrying(run, ctl.sound_on) if i == 0 else ctl.sound_on())
        except CodecError as exc:
            return (
                SirenOutcome.FAILED,
                f"this controller cannot sound a gateway-timed signal: {exc}",
            )
        except Unreachable as exc:
            return SirenOutcome.UNREACHABLE, f"no answer from {ctl.where}: {exc}"
        except DeviceRefused as exc:
            return SirenOutcome.FAILED, f"the controller refused to sound: {exc}"
        except TransportError as exc:
            return await _lost(run, ctl, loop.time() - start, exc)
        if i == 0:
            # Later sounds are measured from the first confirmed one, not from the order.
            start = loop.time() - on_at
        if not fb.ok:
            with contextlib.suppress(TransportError):
                await ctl.sound_off()
            return SirenOutcome.FAILED, (
                f"sound {i + 1} of {len(intervals)} not confirmed by {ctl.evidence}: {fb.detail}"
            )
        if i == 0:
            run.started(f"{fb.detail} (timed by the gateway)")
        if await run.wait_stop_until(start + off_at):
            return await _stopped(run, ctl, loop.time() - start)
        try:
            off = await _stop_hard(ctl)
        except TransportError as exc:
            return await _lost(run, ctl, loop.time() - start, exc)
        if not off.ok:
            return SirenOutcome.FAILED, f"sound {i + 1} did not stop on time: {off.detail}"
    return SirenOutcome.SOUNDED, (
        f"{signal.name}: {len(intervals)} sounds over {signal.duration_s:.1f} s (timed by the "
        f"gateway, each confirmed by {ctl.evidence})"
    )


async def _lost(run: RunControl, ctl: SirenController, elapsed_s: float, exc: Exception) -> Result:
    # Whatever is sounding must not go on forever: keep trying to switch it off.
    with contextlib.suppress(TransportError, DeviceRefused):
        await _stop_hard(ctl)
    return (
        SirenOutcome.UNREACHABLE,
        f"lost contact with {ctl.where} {elapsed_s:.1f} s into the signal: {exc}",
    )

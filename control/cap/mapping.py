"""How siren signals and activation kinds map onto CAP's fields, as tables (docs/cap.md).

CAP asks three questions of every alert: how soon to act (urgency), how bad (severity) and
how sure (certainty). For live alerts and drills the answer follows the signal; a drill keeps
the live values, because its status Exercise already tells every receiver it is not real.
A test answers "no action, minor, unknown" whatever signal it sounds. A Cancel says the
event is over: Past, Minor, Observed.
"""

from __future__ import annotations

from dataclasses import dataclass

from control.cap.model import CapStatus
from shelterwatch.contract import SirenKind

__all__ = [
    "CANCEL_ASSESSMENT",
    "DEFAULT_PROFILE",
    "KIND_OF_STATUS",
    "SIGNAL_PROFILES",
    "STATUS_OF_KIND",
    "TEST_ASSESSMENT",
    "TEST_INSTRUCTION",
    "Assessment",
    "SignalProfile",
    "profile_of",
    "suggest_signal",
]


@dataclass(frozen=True, slots=True)
class Assessment:
    urgency: str
    severity: str
    certainty: str


@dataclass(frozen=True, slots=True)
class SignalProfile:
    """What CAP says about one signal when it sounds for real (or in a drill)."""

    categories: tuple[str, ...]
    responses: tuple[str, ...]
    assessment: Assessment
    instruction_zh: str
    instruction_en: str


STATUS_OF_KIND: dict[SirenKind, CapStatus] = {
    SirenKind.LIVE: CapStatus.ACTUAL,
    SirenKind.DRILL: CapStatus.EXERCISE,
    SirenKind.AUDIBLE_TEST: CapStatus.TEST,
}
# System and Draft are missing on purpose: neither may turn into a siren request.
KIND_OF_STATUS: dict[CapStatus, SirenKind] = {
    status: kind for kind, status in STATUS_OF_KIND.items()
}

# Air-defence signals are about hostile action, so Security joins Safety (CAP: "Security -
# law enforcement, military, homeland and local/private security").
_AIR = ("Safety", "Security")

SIGNAL_PROFILES: dict[str, SignalProfile] = {
    "prealert": SignalProfile(
        categories=_AIR,
        responses=("Prepare",),
        assessment=Assessment("Expected", "Severe", "Likely"),
        instruction_zh=(
            "请立即做好防空准备：携带必需品和防护器材，关闭燃气、电源，"
            "按指定路线有序前往就近人防工程。"
        ),
        instruction_en=(
            "Prepare to take shelter now: take essentials and protective equipment, turn off "
            "gas and power, and follow the marked route to the nearest air-defence shelter."
        ),
    ),
    "air_raid": SignalProfile(
        categories=_AIR,
        responses=("Shelter",),
        assessment=Assessment("Immediate", "Extreme", "Observed"),
        instruction_zh=(
            "立即就近进入人防工程或坚固建筑的地下室隐蔽，听从人防人员指挥；"
            "不要乘坐电梯，不要停留在室外。"
        ),
        instruction_en=(
            "Take shelter now in the nearest air-defence shelter or a sturdy basement and "
            "follow the wardens. Do not use lifts. Do not stay outdoors."
        ),
    ),
    "all_clear": SignalProfile(
        categories=_AIR,
        responses=("AllClear",),
        assessment=Assessment("Past", "Minor", "Observed"),
        instruction_zh="空袭危险已解除，请听从指挥，有序离开人防工程。",
        instruction_en="The danger has passed. Leave the shelter in order as the wardens direct.",
    ),
    "disaster": SignalProfile(
        categories=("Safety",),
        responses=("Avoid", "Monitor"),
        assessment=Assessment("Immediate", "Severe", "Observed"),
        instruction_zh="做好个人防护，远离受影响区域，听从政府和人防部门的指令。",
        instruction_en=(
            "Protect yourself, keep away from the affected area and follow the instructions "
            "of the authorities."
        ),
    ),
}

# A regional signal Shelterwatch does not know: assume the worst that is still honest.
DEFAULT_PROFILE = SignalProfile(
    categories=("Safety",),
    responses=("Monitor",),
    assessment=Assessment("Immediate", "Severe", "Likely"),
    instruction_zh="请按当地人防部门的规定采取行动，留意后续通知。",
    instruction_en="Act as your local civil air-defence office directs and watch for updates.",
)

TEST_ASSESSMENT = Assessment("Unknown", "Minor", "Unknown")
CANCEL_ASSESSMENT = Assessment("Past", "Minor", "Observed")
TEST_INSTRUCTION = (
    "这是防空警报试鸣，不是真实警报，无需采取行动。",
    "This is a test of the air-defence sirens, not a real alert. No action is needed.",
)


def profile_of(signal: str) -> SignalProfile:
    return SIGNAL_PROFILES.get(signal, DEFAULT_PROFILE)


# Upstream event text to a national signal. The first row that matches wins, so the
# all-clear (空袭警报解除) beats air raid, and 灾害预警 is a disaster, not a pre-alert.
# English words are whole phrases: a bare "warning" says nothing about which signal.
_EVENT_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("all_clear", ("解除", "all clear", "all-clear")),
    ("disaster", ("灾情", "灾害", "disaster")),
    ("prealert", ("预先", "预警", "pre-alert", "prealert", "preliminary alert")),
    ("air_raid", ("空袭", "紧急", "air raid", "air-raid", "air attack")),
)


def suggest_signal(event: str) -> str | None:
    """The national signal an event text names, or None when it names none."""
    text = event.casefold()
    for signal, words in _EVENT_WORDS:
        if any(word in text for word in words):
            return signal
    return None

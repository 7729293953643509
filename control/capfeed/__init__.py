"""The CAP feed: CAP 1.2 messages published for siren activations and test-day runs, and
upstream CAP read into activation requests (docs/cap.md). The message format itself is
control/cap; this package stores, publishes and reads messages. Lifespan key ``cap``."""

from control.capfeed.feed import CapFeed
from control.capfeed.inbound import NoSirenInArea, Suggestion, request, suggest
from control.capfeed.models import CapMessagePublic, CapPrefill, CapUpload, public

__all__ = [
    "CapFeed",
    "CapMessagePublic",
    "CapPrefill",
    "CapUpload",
    "NoSirenInArea",
    "Suggestion",
    "public",
    "request",
    "suggest",
]

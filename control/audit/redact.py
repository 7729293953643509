"""What of a request body goes into the audit trail: parsed, with secrets masked. Pure."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

__all__ = ["MASK", "body_params", "is_secret_key", "redact"]

MASK = "***"

# Any key that names a credential, in any case and spelling: password, new_password,
# client_secret, access_token, refresh-token, api_key, authorization, private_key, passwd...
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)|secret|token|api[_-]?key|authori[sz]ation|private[_-]?key|credential",
    re.IGNORECASE,
)


def is_secret_key(key: str) -> bool:
    return _SECRET_KEY.search(key) is not None


def redact(value: object) -> object:
    """``value`` with the value of every secret-named key, at any depth, replaced by MASK."""
    if isinstance(value, dict):
        return {str(k): MASK if is_secret_key(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def body_params(body: bytes, content_type: str, *, complete: bool = True) -> dict[str, object]:
    """The audit parameters of a request body: a JSON object or array, or a form, redacted.

    Anything else (a JSON scalar, multipart, binary, an incomplete capture) is described by
    its size only: recording bytes redaction cannot look into could leak a secret.
    """
    if not body:
        return {}
    if not complete:
        return {"_body": f"{len(body)}+ bytes, too large to record"}
    media = content_type.split(";", 1)[0].strip().lower()
    parsed: object = None
    try:
        if media == "application/json" or media.endswith("+json"):
            parsed = json.loads(body, parse_constant=_refuse_constant)
        elif media == "application/x-www-form-urlencoded":
            parsed = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except ValueError:  # bad JSON, bad UTF-8: the request itself will have been refused
        parsed = None
    if isinstance(parsed, dict):
        redacted = redact(parsed)
        assert isinstance(redacted, dict)
        return redacted
    if isinstance(parsed, list):
        return {"_body": redact(parsed)}
    return {"_body": f"{len(body)} bytes of {media or 'unknown type'}, not recorded"}


def _refuse_constant(name: str) -> object:
    # NaN and Infinity are not JSON (Python accepts them); canonical JSON could not hold them.
    raise ValueError(f"{name} is not JSON")

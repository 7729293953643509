"""Build a store from a URL, the one setting that chooses and configures the adapter.

Accepted forms::

    sqlite:///relative/path.db          (three slashes: relative to the working directory)
    sqlite:////absolute/path.db         (four slashes: absolute, as in SQLAlchemy)
    influxdb://[user:pass@]host[:port]/dbname[?gzip=true&timeout=10&retries=5&retention=90d]
    influxdbs://...                     (the same over HTTPS)
    http[s]://[user:pass@]host[:port]/dbname[?...]   (InfluxDB too)

The store comes back unopened: use it as ``async with open_store(url) as store:``.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from shelterwatch.errors import ConfigError
from shelterwatch.store.base import TimeSeriesStore
from shelterwatch.store.influx import InfluxStore
from shelterwatch.store.sqlite import SqliteStore

__all__ = ["ACCEPTED_FORMS", "open_store"]

ACCEPTED_FORMS = (
    "sqlite:///relative/path.db",
    "sqlite:////absolute/path.db",
    "influxdb://[user:pass@]host[:port]/dbname[?gzip=true&timeout=10&retries=5&retention=90d&create=false]",
    "influxdbs://... (HTTPS)",
    "http[s]://[user:pass@]host[:port]/dbname (InfluxDB)",
)
_INFLUX_SCHEMES = {"influxdb": "http", "influxdbs": "https", "http": "http", "https": "https"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _bad(url: str, why: str) -> ConfigError:
    forms = "\n".join(f"  {form}" for form in ACCEPTED_FORMS)
    return ConfigError(f"store URL {_redact(url)!r}: {why}. Accepted forms:\n{forms}")


def open_store(url: str) -> TimeSeriesStore:
    """The store that ``url`` names, not yet opened. Raises ConfigError for anything else."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise _bad(url, f"cannot parse it ({exc})") from exc
    scheme = parts.scheme.lower()

    if scheme == "sqlite":
        if parts.netloc or parts.query:
            raise _bad(url, "an SQLite URL has no host or options, only a path after ':///'")
        path = unquote(parts.path)
        # urlsplit leaves "/relative.db" for three slashes and "//abs.db" for four.
        path = path[1:] if path.startswith("/") else path
        if not path or path.endswith("/"):
            raise _bad(url, "the path to the database file is missing")
        return SqliteStore(path)

    if scheme in _INFLUX_SCHEMES:
        if not parts.hostname:
            raise _bad(url, "the host is missing")
        database = unquote(parts.path.strip("/"))
        if not database or "/" in database:
            raise _bad(url, "the path must be exactly the database name")
        options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        gzip = _flag(url, options.pop("gzip", "false"), "gzip")
        timeout_s = _number(url, options.pop("timeout", "10"), "timeout", float)
        retries = int(_number(url, options.pop("retries", "5"), "retries", int))
        retention = options.pop("retention", None) or None
        # create=false for a login without admin rights, on a database made beforehand.
        create = _flag(url, options.pop("create", "true"), "create")
        if options:
            raise _bad(url, f"unknown option(s) {', '.join(sorted(options))}")
        host = parts.hostname
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        base = f"{_INFLUX_SCHEMES[scheme]}://{host}:{port or 8086}"
        try:
            return InfluxStore(
                base,
                database,
                unquote(parts.username) if parts.username else None,
                unquote(parts.password) if parts.password else None,
                gzip=gzip,
                timeout_s=timeout_s,
                retries=retries,
                retention=retention,
                create_database=create,
            )
        except ValueError as exc:
            raise _bad(url, str(exc)) from exc

    raise _bad(url, f"unknown scheme {parts.scheme!r}" if scheme else "no scheme")


def _flag(url: str, text: str, name: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise _bad(url, f"option {name}={text!r} must be true or false")


def _number(url: str, text: str, name: str, kind: type[float] | type[int]) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise _bad(url, f"option {name}={text!r} must be a {kind.__name__}") from None
    if value < 0:
        raise _bad(url, f"option {name}={text!r} must not be negative")
    return value

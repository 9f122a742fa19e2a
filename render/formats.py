"""Numbers and durations written the way Prometheus and people read them in rules and docs."""

from __future__ import annotations

_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration(seconds: float) -> str:
    """Seconds as a Prometheus duration: 300 -> "5m", 5400 -> "1h30m", 0.25 -> "250ms"."""
    if seconds == 0:
        return "0s"
    millis = round(seconds * 1000)
    if millis % 1000:
        return f"{millis}ms"
    rest, parts = millis // 1000, []
    for unit, size in _UNITS:
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def number(value: float) -> str:
    """A threshold as PromQL takes it, without a needless ".0": 50.0 -> "50", 0.8 -> "0.8"."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def percent(ratio: float) -> str:
    """A ratio for people: 0.03 -> "3%", 0.995 -> "99.5%"."""
    return f"{number(round(ratio * 100, 6))}%"

import pytest
from opsloop.render.formats import duration, number, percent


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (1, "1s"), (90, "1m30s"), (300, "5m"), (3600, "1h"), (5400, "1h30m"), (21600, "6h"),
     (604800, "1w"), (0.25, "250ms"), (1.5, "1500ms")],
)  # fmt: skip
def test_duration_is_prometheus_syntax(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("value", "text"), [(50.0, "50"), (0, "0"), (0.8, "0.8"), (0.03, "0.03"), (1234567.0, "1234567")]
)
def test_number_drops_needless_fraction(value: float, text: str) -> None:
    assert number(value) == text


@pytest.mark.parametrize(("ratio", "text"), [(0.03, "3%"), (0.5, "50%"), (0.995, "99.5%"), (0.07, "7%")])
def test_percent(ratio: float, text: str) -> None:
    assert percent(ratio) == text

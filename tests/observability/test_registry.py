"""The Prometheus registry on its own: bucket math, escaping, and text prometheus_client accepts."""

from __future__ import annotations

import math
from itertools import pairwise

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelmux.observability.gateway import TOKEN_BUCKETS, Bounded
from modelmux.observability.metrics import (
    Histogram,
    Registry,
    escape_help,
    escape_label_value,
    format_value,
)


def parse(registry: Registry) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(registry.render().decode()):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((sample.labels, sample.value))
    return out


def test_a_value_on_a_bound_counts_in_that_bucket() -> None:
    histogram = Histogram("h_seconds", "doc", (), (0.1, 0.5, 1.0))
    for observed in (0.1, 0.1000001, 0.5, 0.7, 1.0, 2.0, 0.0, -1.0):
        histogram.observe((), observed)
    assert histogram.buckets() == [(0.1, 3), (0.5, 5), (1.0, 7), (math.inf, 8)]
    assert histogram.count() == 8
    assert histogram.sum() == pytest.approx(0.1 + 0.1000001 + 0.5 + 0.7 + 1.0 + 2.0 - 1.0)


def test_histogram_exposition_is_cumulative_with_inf_sum_and_count() -> None:
    registry = Registry()
    histogram = registry.histogram("lat_seconds", "Latency.", ("route",), (0.25, 1))
    histogram.observe(("/a",), 0.2)
    histogram.observe(("/a",), 0.3)
    histogram.observe(("/a",), 5)
    histogram.observe(("/b",), 1)
    text = registry.render().decode()
    assert 'lat_seconds_bucket{route="/a",le="0.25"} 1\n' in text
    assert 'lat_seconds_bucket{route="/a",le="1.0"} 2\n' in text
    assert 'lat_seconds_bucket{route="/a",le="+Inf"} 3\n' in text
    samples = parse(registry)
    assert ({"route": "/a"}, 5.5) in samples["lat_seconds_sum"]
    assert ({"route": "/b"}, 1) in samples["lat_seconds_count"]
    assert [v for labels, v in samples["lat_seconds_bucket"] if labels["route"] == "/b"] == [0, 1, 1]


def test_token_buckets_are_the_opentelemetry_powers_of_four() -> None:
    assert TOKEN_BUCKETS[0] == 1 and TOKEN_BUCKETS[-1] == 67108864 and len(TOKEN_BUCKETS) == 14
    assert all(b == a * 4 for a, b in pairwise(TOKEN_BUCKETS))


@pytest.mark.parametrize(("raw", "escaped"), [
    ("plain", "plain"),
    ('say "hi"', 'say \\"hi\\"'),
    ("back\\slash", "back\\\\slash"),
    ("two\nlines", "two\\nlines"),
    ('\\"\n', '\\\\\\"\\n'),
    ("tab\tand ünïcode ✓", "tab\tand ünïcode ✓"),
])
def test_label_values_are_escaped_as_the_text_format_says(raw: str, escaped: str) -> None:
    assert escape_label_value(raw) == escaped


@pytest.mark.parametrize("raw", ['say "hi"', "back\\slash", "two\nlines", '\\"\n', "{}=,", "ü✓"])
def test_escaped_label_values_parse_back_to_the_original(raw: str) -> None:
    registry = Registry()
    registry.counter("odd_total", "Odd labels.", ("model",)).inc((raw,), 2)
    assert parse(registry)["odd_total"] == [({"model": raw}, 2)]


def test_help_escapes_backslash_and_newline_only() -> None:
    assert escape_help('a\\b\n"c"') == 'a\\\\b\\n"c"'
    registry = Registry()
    registry.gauge("g", 'line one\nline "two" \\ end')
    assert registry.render().decode().splitlines()[0] == '# HELP g line one\\nline "two" \\\\ end'


def test_values_render_as_prometheus_reads_them() -> None:
    assert [format_value(v) for v in (3, 0.25, 1.0, math.inf, -math.inf)] == \
        ["3", "0.25", "1.0", "+Inf", "-Inf"]
    assert format_value(math.nan) == "NaN"


def test_unlabelled_counter_shows_zero_and_labelled_families_show_only_help_and_type() -> None:
    registry = Registry()
    registry.counter("fallbacks_total", "None yet.")
    registry.counter("errors_total", "By code.", ("code",))
    text = registry.render().decode()
    assert text == ("# HELP fallbacks_total None yet.\n# TYPE fallbacks_total counter\n"
                    "fallbacks_total 0\n# HELP errors_total By code.\n# TYPE errors_total counter\n")
    assert {f.name: f.type for f in text_string_to_metric_families(text)} == \
        {"fallbacks": "counter", "errors": "counter"}


def test_gauges_go_both_ways_and_clear() -> None:
    registry = Registry()
    gauge = registry.gauge("pool", "Pool.", ("origin",))
    gauge.inc(("a",))
    gauge.inc(("a",), 2)
    gauge.dec(("a",))
    gauge.set(("b",), 7)
    assert (gauge.value(("a",)), gauge.value(("b",))) == (2, 7)
    gauge.clear()
    assert "pool{" not in registry.render().decode()


def test_misuse_is_refused() -> None:
    registry = Registry()
    counter = registry.counter("c_total", "C.", ("a", "b"))
    with pytest.raises(ValueError, match="cannot go down"):
        counter.inc(("x", "y"), -1)
    with pytest.raises(ValueError, match="takes labels"):
        counter.inc(("only-one",))
    with pytest.raises(ValueError, match="already registered"):
        registry.gauge("c_total", "again")
    with pytest.raises(ValueError, match="invalid metric name"):
        registry.gauge("bad-name", "dash")
    with pytest.raises(ValueError, match="invalid label name"):
        registry.gauge("g", "reserved", ("__name",))
    with pytest.raises(ValueError, match="reserved"):
        registry.histogram("h", "le", ("le",), (1,))
    with pytest.raises(ValueError, match="strictly increasing"):
        registry.histogram("h2", "order", (), (1, 1))
    with pytest.raises(ValueError, match="strictly increasing"):
        registry.histogram("h3", "none", (), ())


def test_bounded_labels_keep_known_values_and_cap_new_ones() -> None:
    bounded = Bounded(2, known=["gpt-x"])
    assert [bounded(v) for v in ("gpt-x", "a", "b", "c", "a", "gpt-x")] == \
        ["gpt-x", "a", "b", "other", "a", "gpt-x"]

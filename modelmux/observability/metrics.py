"""A small Prometheus registry: counters, gauges and histograms with labels, rendered as text.

Text exposition format 0.0.4 (Prometheus "Exposition formats"); no dependency. One event loop
owns a registry, so there are no locks. Families are built at start-up and kept by the object
that records into them; this module has no global registry and knows no ModelMux metric.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from itertools import pairwise
from typing import Any, ClassVar

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

LabelValues = tuple[str, ...]
Snapshot = dict[str, Any]

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def escape_label_value(value: str) -> str:
    """A label value for inside double quotes: backslash, double quote and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def escape_help(text: str) -> str:
    """A HELP docstring: backslash and newline escaped (quotes stay as they are)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value or bucket bound as Prometheus parses it (``+Inf``, ``NaN``, ``0.25``)."""
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(value)


class Family:
    """One metric name with its help, type and label names; the samples live in subclasses."""

    kind: ClassVar[str] = "untyped"

    def __init__(self, name: str, doc: str, labels: Sequence[str] = ()) -> None:
        """Raises: ValueError: an invalid metric or label name."""
        if not _METRIC_NAME.fullmatch(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labels:
            if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} for {name}")
        self.name = name
        self.doc = doc
        self.labels = tuple(labels)

    def _check(self, values: LabelValues) -> None:
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {values!r}")

    def _label_text(self, values: LabelValues, extra: str = "") -> str:
        pairs = [f'{n}="{escape_label_value(v)}"' for n, v in zip(self.labels, values, strict=True)]
        if extra:
            pairs.append(extra)
        return "{" + ",".join(pairs) + "}" if pairs else ""

    def samples(self) -> Iterator[str]:
        """The family's sample lines, without HELP and TYPE."""
        return iter(())

    def snapshot(self) -> Snapshot:
        """The family as plain data (name, type, help, labels, samples), for another process."""
        return {"name": self.name, "kind": self.kind, "doc": self.doc, "labels": list(self.labels),
                "samples": self._sample_data()}

    def _sample_data(self) -> list[Any]:
        return []

    def render(self) -> Iterator[str]:
        yield f"# HELP {self.name} {escape_help(self.doc)}"
        yield f"# TYPE {self.name} {self.kind}"
        yield from self.samples()


class _Scalar(Family):
    """One number per label set; an unlabelled family starts with its one sample at 0."""

    def __init__(self, name: str, doc: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, doc, labels)
        self._values: dict[LabelValues, float] = {} if self.labels else {(): 0}

    def _add(self, labels: LabelValues = (), amount: float = 1) -> None:
        current = self._values.get(labels)
        if current is None:
            self._check(labels)
            current = 0
        self._values[labels] = current + amount

    def value(self, labels: LabelValues = ()) -> float:
        return self._values.get(labels, 0)

    def items(self) -> list[tuple[LabelValues, float]]:
        """Every (label values, value) pair, for a reader that adds series up."""
        return list(self._values.items())

    def samples(self) -> Iterator[str]:
        for labels, value in self._values.items():
            yield f"{self.name}{self._label_text(labels)} {format_value(value)}"

    def _sample_data(self) -> list[Any]:
        return [[list(labels), value] for labels, value in self._values.items()]


class Counter(_Scalar):
    """A value that only goes up; name it ``*_total``."""

    kind = "counter"

    def inc(self, labels: LabelValues = (), amount: float = 1) -> None:
        """Add ``amount`` to the sample for ``labels``.

        Raises:
            ValueError: a negative amount, or the wrong number of label values.
        """
        if amount < 0:
            raise ValueError(f"{self.name}: a counter cannot go down")
        current = self._values.get(labels)  # _add's body: one frame less per count
        if current is None:
            self._check(labels)
            current = 0
        self._values[labels] = current + amount


class Gauge(_Scalar):
    """A value that goes up and down, or is set from a snapshot at scrape time."""

    kind = "gauge"

    def __init__(self, name: str, doc: str, labels: Sequence[str] = (),
                 merge: str = "sum") -> None:
        """``merge`` says how workers' values add up: ``sum`` (in flight, connections) or
        ``max`` (an info gauge that is 1 everywhere)."""
        super().__init__(name, doc, labels)
        self.merge = merge

    def snapshot(self) -> Snapshot:
        return {**super().snapshot(), "merge": self.merge}

    inc = _Scalar._add  # the same method: no second frame per count

    def dec(self, labels: LabelValues = (), amount: float = 1) -> None:
        self._add(labels, -amount)

    def set(self, labels: LabelValues, value: float) -> None:
        if labels not in self._values:
            self._check(labels)
        self._values[labels] = value

    def clear(self) -> None:
        """Forget every labelled sample (before setting a fresh snapshot)."""
        self._values = {} if self.labels else {(): 0}


class Series:
    """One label set's buckets. A caller that observes the same labels on every request
    keeps it (``Histogram.series``) and counts into it directly: ``counts[bisect_left(bounds,
    value)] += 1`` and ``total += value``, what ``Histogram.observe`` does after its lookup."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # per bucket, not cumulative; the last is +Inf
        self.total: float = 0.0


class Histogram(Family):
    """Observations counted into buckets by upper bound (``le``, inclusive), with sum and count."""

    kind = "histogram"

    def __init__(self, name: str, doc: str, labels: Sequence[str] = (),
                 buckets: Iterable[float] = ()) -> None:
        """Raises: ValueError: no buckets, bounds not strictly increasing, or a ``le`` label."""
        super().__init__(name, doc, labels)
        if "le" in self.labels:
            raise ValueError(f"{name}: 'le' is reserved for histogram buckets")
        bounds = [float(b) for b in buckets if not math.isinf(b)]
        if not bounds or any(a >= b for a, b in pairwise(bounds)):
            raise ValueError(f"{name}: buckets must be strictly increasing and not empty")
        self.bounds: tuple[float, ...] = tuple(bounds)
        self._les = [f'le="{format_value(b)}"' for b in self.bounds] + ['le="+Inf"']
        self._series: dict[LabelValues, Series] = {}

    def observe(self, labels: LabelValues, value: float) -> None:
        """Count ``value`` in the first bucket whose bound is at least ``value``.

        Raises:
            ValueError: the wrong number of label values.
        """
        series = self._series.get(labels)
        if series is None:
            self._check(labels)
            series = self._series[labels] = Series(self.bounds)
        series.counts[bisect_left(self.bounds, value)] += 1
        series.total += value

    def series(self, labels: LabelValues) -> Series:
        """The series of ``labels``, made (empty) if new, to count into directly.

        Raises:
            ValueError: the wrong number of label values.
        """
        series = self._series.get(labels)
        if series is None:
            self._check(labels)
            series = self._series[labels] = Series(self.bounds)
        return series

    def buckets(self, labels: LabelValues = ()) -> list[tuple[float, int]]:
        """Cumulative (bound, count) pairs, ending with (+inf, count), as exposed."""
        series = self._series.get(labels)
        counts = series.counts if series is not None else [0] * (len(self.bounds) + 1)
        out, running = [], 0
        for bound, count in zip((*self.bounds, math.inf), counts, strict=True):
            running += count
            out.append((bound, running))
        return out

    def merged_counts(self) -> list[int]:
        """Per-bucket counts (not cumulative, the last is +Inf) added over every series."""
        out = [0] * (len(self.bounds) + 1)
        for series in self._series.values():
            out = [a + b for a, b in zip(out, series.counts, strict=True)]
        return out

    def count(self, labels: LabelValues = ()) -> int:
        series = self._series.get(labels)
        return sum(series.counts) if series is not None else 0

    def sum(self, labels: LabelValues = ()) -> float:
        series = self._series.get(labels)
        return series.total if series is not None else 0.0

    def samples(self) -> Iterator[str]:
        name = self.name
        for labels, series in self._series.items():
            running = 0
            for le, count in zip(self._les, series.counts, strict=True):
                running += count
                yield f"{name}_bucket{self._label_text(labels, le)} {running}"
            text = self._label_text(labels)
            yield f"{name}_sum{text} {format_value(series.total)}"
            yield f"{name}_count{text} {running}"

    def snapshot(self) -> Snapshot:
        return {**super().snapshot(), "bounds": list(self.bounds)}

    def _sample_data(self) -> list[Any]:
        return [[list(labels), series.counts, series.total]
                for labels, series in self._series.items()]


class Registry:
    """The families of one process, rendered in the order they were made."""

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}

    def register(self, family: Family) -> None:
        """Raises: ValueError: a family of that name exists."""
        if family.name in self._families:
            raise ValueError(f"metric {family.name} is already registered")
        self._families[family.name] = family

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
        family = Counter(name, doc, labels)
        self.register(family)
        return family

    def gauge(self, name: str, doc: str, labels: Sequence[str] = (), merge: str = "sum") -> Gauge:
        family = Gauge(name, doc, labels, merge)
        self.register(family)
        return family

    def histogram(self, name: str, doc: str, labels: Sequence[str],
                  buckets: Iterable[float]) -> Histogram:
        family = Histogram(name, doc, labels, buckets)
        self.register(family)
        return family

    def snapshot(self) -> list[Snapshot]:
        """Every family as plain data, in order (see ``merge``)."""
        return [family.snapshot() for family in self._families.values()]

    def render(self) -> bytes:
        """Every family in text format 0.0.4, ending with a newline."""
        lines = [line for family in self._families.values() for line in family.render()]
        return ("\n".join(lines) + "\n").encode("utf-8")


def merge(snapshots: Iterable[tuple[list[Snapshot], bool]]) -> Registry:
    """One registry adding up several processes' snapshots, given with whether each is alive.

    Counters and histograms add up over every snapshot, so a worker that exited still counts;
    gauges are current values, so only live processes' count (summed, or the maximum for an
    info gauge). A family whose type, labels or buckets differ from the first one seen (two
    versions side by side) is skipped in that snapshot.
    """
    out = Registry()
    for families, alive in snapshots:
        for data in families:
            family = out._families.get(data["name"])
            if family is None:
                family = _family_from(data)
                if family is None:
                    continue
                out.register(family)
            elif family.snapshot()["labels"] != data["labels"] or family.kind != data["kind"]:
                continue
            _add_samples(family, data, alive)
    return out


def _family_from(data: Snapshot) -> Family | None:
    kind, name, doc, labels = data["kind"], data["name"], data["doc"], data["labels"]
    if kind == "counter":
        return Counter(name, doc, labels)
    if kind == "gauge":
        return Gauge(name, doc, labels, data.get("merge", "sum"))
    if kind == "histogram":
        return Histogram(name, doc, labels, data["bounds"])
    return None


def _add_samples(family: Family, data: Snapshot, alive: bool) -> None:
    if isinstance(family, Histogram):
        if list(family.bounds) != data.get("bounds"):
            return
        for labels, counts, total in data["samples"]:
            key = tuple(labels)
            series = family._series.get(key)
            if series is None:
                series = family._series[key] = Series(family.bounds)
            series.counts = [a + b for a, b in zip(series.counts, counts, strict=True)]
            series.total += total
    elif isinstance(family, Gauge):
        if not alive:
            return
        for labels, value in data["samples"]:
            key = tuple(labels)
            current = family._values.get(key)
            if current is None:
                family._values[key] = value
            elif family.merge == "max":
                family._values[key] = max(current, value)
            else:
                family._values[key] = current + value
    elif isinstance(family, Counter):
        for labels, value in data["samples"]:
            key = tuple(labels)
            family._values[key] = family._values.get(key, 0) + value

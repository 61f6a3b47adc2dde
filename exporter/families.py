"""Counters and a histogram that the event loop updates without locks, and that write their
own exposition lines.

prometheus-client's ``Counter`` checks label values and takes a lock in ``labels()``, and
another lock in ``inc()``; every update here happens on the event loop's thread, so a series
is a float that an event adds to. At scrape time prometheus-client builds a ``Sample`` for
each series and formats its labels anew, about 6 µs a series, so ~100 ms at the series cap
on the event loop. Here each series keeps its line up to the value (``name{labels} ``),
made once when the series is created, and a scrape writes the value after it.

:meth:`collect` gives prometheus-client's own metric families, so the registry,
``get_sample_value``, ``restricted_registry`` and its encoders see ordinary counters and
histograms; :meth:`render` writes exactly the lines its encoders write for them (a test
compares the two byte for byte).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

from exporter.catalog import MetricSpec, MetricType

#: Values below this print as Python's ``repr`` does; prometheus-client switches to Go's
#: exponent form above it.
_PLAIN_BELOW: Final = 1e6


def go_float(value: float) -> str:
    """A number as prometheus-client writes it, the way Go does (``1e+06``, ``+Inf``)."""
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]  # untyped upstream
    return text


def number(value: float) -> str:
    """A sample value as prometheus-client writes it (:func:`go_float`, only faster)."""
    return repr(value) if 0 <= value < _PLAIN_BELOW else go_float(value)


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def labels_text(names: Sequence[str], values: Sequence[str]) -> str:
    """``{a="x",b="y"}`` as prometheus-client writes labels: sorted by name, values escaped."""
    if not names:
        return ""
    pairs = sorted(zip(names, values, strict=True))
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "}"


class Series:
    """One counter series: its value, and its exposition line up to the value."""

    __slots__ = ("line", "value")

    def __init__(self, line: str) -> None:
        self.line = line
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class CounterFamily(Collector):
    """A counter of the catalog and its series, one per set of label values."""

    def __init__(self, spec: MetricSpec, registry: CollectorRegistry) -> None:
        assert spec.type is MetricType.COUNTER, spec.name
        self.spec = spec
        self._names = tuple(spec.labels)
        self._series: dict[tuple[str, ...], Series] = {}
        if not self._names:
            self._series[()] = Series(f"{spec.series} ")
        registry.register(self)

    def labels(self, *values: str) -> Series:
        """The series of these label values, created at 0 the first time."""
        series = self._series.get(values)
        if series is None:
            if len(values) != len(self._names):
                raise ValueError(f"{self.spec.name} takes labels {self._names}, got {values}")
            # StrEnum members equal, and hash as, their values: the key is the text.
            texts = tuple(str(value) for value in values)
            line = f"{self.spec.series}{labels_text(self._names, texts)} "
            series = self._series[texts] = Series(line)
        return series

    def inc(self, amount: float = 1.0) -> None:
        """Add to a counter without labels."""
        self._series[()].value += amount

    def describe(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self.spec.name, self.spec.help, labels=self._names)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self.spec.name, self.spec.help, labels=self._names)
        for values, series in self._series.items():
            family.add_metric(values, series.value)
        yield family

    def render(self, out: list[str]) -> None:
        """Append every series' exposition line (the family's header is the caller's)."""
        out.extend(f"{series.line}{number(series.value)}\n" for series in self._series.values())


class Timings:
    """One histogram series: observations per bucket, their sum, and the exposition lines."""

    __slots__ = ("bounds", "counts", "lines", "sum")

    def __init__(self, bounds: tuple[float, ...], lines: tuple[str, ...]) -> None:
        self.bounds = bounds
        #: Observations per bucket, not cumulative; the last bucket is +Inf.
        self.counts = [0.0] * len(bounds)
        self.sum = 0.0
        #: Each bucket's line up to the value, then ``_count``'s and ``_sum``'s.
        self.lines = lines

    def observe(self, amount: float) -> None:
        self.counts[bisect_left(self.bounds, amount)] += 1.0
        self.sum += amount


class HistogramFamily(Collector):
    """A histogram of the catalog and its series, one per set of label values."""

    def __init__(self, spec: MetricSpec, registry: CollectorRegistry) -> None:
        assert spec.type is MetricType.HISTOGRAM, spec.name
        self.spec = spec
        self._names = tuple(spec.labels)
        self._bounds = (*spec.buckets, INF)
        self._series: dict[tuple[str, ...], Timings] = {}
        registry.register(self)

    def labels(self, *values: str) -> Timings:
        series = self._series.get(values)
        if series is None:
            if len(values) != len(self._names):
                raise ValueError(f"{self.spec.name} takes labels {self._names}, got {values}")
            texts = tuple(str(value) for value in values)
            name, names = self.spec.name, (*self._names, "le")
            lines = (
                *(
                    f"{name}_bucket{labels_text(names, (*texts, go_float(bound)))} "
                    for bound in self._bounds
                ),
                f"{name}_count{labels_text(self._names, texts)} ",
                f"{name}_sum{labels_text(self._names, texts)} ",
            )
            series = self._series[texts] = Timings(self._bounds, lines)
        return series

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.spec.name, self.spec.help, labels=self._names)

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for values, series in self._series.items():
            buckets, total = [], 0.0
            for bound, count in zip(self._bounds, series.counts, strict=True):
                total += count
                buckets.append((go_float(bound), total))
            family.add_metric(values, buckets, series.sum)
        yield family

    def render(self, out: list[str]) -> None:
        for series in self._series.values():
            lines, total = series.lines, 0.0
            for line, count in zip(lines, series.counts, strict=False):
                total += count
                out.append(f"{line}{number(total)}\n")
            out.append(f"{lines[-2]}{number(total)}\n")
            out.append(f"{lines[-1]}{number(series.sum)}\n")

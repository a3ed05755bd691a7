"""Prometheus text exposition (format 0.0.4) for the server's counters and histograms.

Small on purpose: counters and histograms with fixed label names, guarded by one lock.
"""

from __future__ import annotations

import math
import threading

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple, extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(x: float) -> str:
    return "+Inf" if x == math.inf else repr(float(x))


class Counter:
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()):
        self.name, self.help, self.label_names = name, help, labels
        self.values: dict[tuple, float] = {}

    def inc(self, *labels, amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for key, v in sorted(self.values.items()):
            lines.append(f"{self.name}{_labels(self.label_names, key)} {_num(v)}")
        return lines


class Gauge(Counter):
    def set(self, value: float, *labels) -> None:
        self.values[labels] = float(value)

    def render(self) -> list[str]:
        lines = super().render()
        lines[1] = f"# TYPE {self.name} gauge"
        if not self.values and not self.label_names:
            lines.append(f"{self.name} 0")
        return lines


class Histogram:
    def __init__(self, name: str, help: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()):
        self.name, self.help, self.label_names = name, help, labels
        self.buckets = tuple(sorted(buckets)) + (math.inf,)
        self.series: dict[tuple, list] = {}  # labels -> [bucket counts..., sum, count]

    def observe(self, value: float, *labels) -> None:
        s = self.series.setdefault(labels, [0] * len(self.buckets) + [0.0, 0])
        for i, upper in enumerate(self.buckets):
            if value <= upper:
                s[i] += 1  # cumulative: every bucket whose bound holds the value
        s[-2] += value
        s[-1] += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, s in sorted(self.series.items()):
            for i, upper in enumerate(self.buckets):
                le = 'le="%s"' % _num(upper)
                lines.append(f"{self.name}_bucket{_labels(self.label_names, key, le)} {s[i]}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_num(s[-2])}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {s[-1]}")
        return lines


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Every figure the server exports at /metrics."""

    def __init__(self, model: str):
        self.model = model
        self._lock = threading.Lock()
        self.requests = Counter("kiln_requests_total", "HTTP requests by route and status code.", ("route", "code"))
        self.errors = Counter("kiln_errors_total", "HTTP requests answered with a 4xx or 5xx status, by route and code.", ("route", "code"))
        self.latency = Histogram("kiln_request_duration_seconds", "Time from request to response, by route.", LATENCY_BUCKETS, ("route",))
        self.batch_size = Histogram("kiln_batch_size", "Examples (rows) per model call (micro-batches).", BATCH_BUCKETS)
        self.inference = Histogram("kiln_inference_duration_seconds", "Time of one micro-batch: decoding the rows requests left encoded, then the model call.", LATENCY_BUCKETS)
        self.queue_wait = Histogram("kiln_queue_wait_seconds", "Time a request waited for its micro-batch to start.", LATENCY_BUCKETS)
        self.examples = Counter("kiln_examples_total", "Examples (rows) the model answered.")
        self.in_flight = Gauge("kiln_requests_in_flight", "Requests being handled now.")
        self._in_flight = 0

    def request_started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.in_flight.set(self._in_flight)

    def request_done(self, route: str, code: int, seconds: float) -> None:
        with self._lock:
            self._in_flight -= 1
            self.in_flight.set(self._in_flight)
            self.requests.inc(route, str(code))
            if code >= 400:
                self.errors.inc(route, str(code))
            self.latency.observe(seconds, route)

    def batch_done(self, n: int, seconds: float, waits: list[float]) -> None:
        with self._lock:
            self.batch_size.observe(n)
            self.inference.observe(seconds)
            self.examples.inc(amount=n)
            for w in waits:
                self.queue_wait.observe(w)

    def render(self) -> str:
        with self._lock:
            lines = []
            for metric in (self.requests, self.errors, self.latency, self.batch_size, self.inference, self.queue_wait,
                           self.examples, self.in_flight):
                lines += metric.render()
        return "\n".join(lines) + "\n"

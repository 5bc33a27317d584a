"""Turns a ``Tally`` into the JSON result and the human report; draws the live progress line.

Times are milliseconds, rates per second. The proxy-versus-direct overhead is the difference
of latency percentiles and the ratio of throughputs. No I/O but the ``Progress`` writer.
"""

from __future__ import annotations

from typing import Any, TextIO

from modelmux.bench.client import LoadRun, Tally

Result = dict[str, Any]


def result(tally: Tally, url: str, stream: bool, hwm: int | None = None,
           local: bool = False) -> Result:
    """The JSON object for one run against ``url``."""
    seconds = tally.elapsed_ns / 1e9 if tally.elapsed_ns > 0 else 0.0

    def rate(count: int) -> float:
        return round(count / seconds, 3) if seconds else 0.0

    errors = dict(sorted(tally.errors.items()))
    return {
        "url": url,
        "elapsed_s": round(seconds, 6),
        "responses": tally.responses,
        "ok": tally.ok,
        "errors": {"total": sum(errors.values()), **errors},
        "req_per_s": rate(tally.responses),
        "ok_per_s": rate(tally.ok),
        "streams_per_s": rate(tally.streams) if stream else None,
        "chunks_per_s": rate(tally.events) if stream else None,
        "rx_bytes_per_s": rate(tally.rx_bytes),
        "latency_ms": tally.latency.summary(),
        "ttfb_ms": tally.ttfb.summary(),
        "chunk_gap_ms": tally.gap.summary() if stream else None,
        "rss": {"peak_bytes": tally.rss_peak, "hwm_bytes": hwm} if local else None,
    }


def overhead(direct: Result, proxy: Result) -> Result:
    """Proxy minus direct for each latency/TTFB percentile; proxy/direct for throughput."""

    def diff(key: str) -> dict[str, float] | None:
        a, b = direct.get(key), proxy.get(key)
        if not a or not b:
            return None
        return {name: round(b[name] - a[name], 6) for name in a if name != "min"}

    base = direct["req_per_s"]
    return {
        "latency_ms": diff("latency_ms"),
        "ttfb_ms": diff("ttfb_ms"),
        "throughput_ratio": round(proxy["req_per_s"] / base, 4) if base else None,
    }


def failed_completely(res: Result) -> bool:
    """Every request of the run failed (or none completed)."""
    return bool(res["ok"] == 0)


def _mib(n: int | None) -> str:
    return "-" if n is None else f"{n / 1048576:.1f} MiB"


def _pcts(summary: dict[str, float] | None, sign: bool = False) -> str:
    if not summary:
        return "-"
    fmt = "{:+.3f}" if sign else "{:.3f}"
    keys = ("p50", "p90", "p99", "p99.9", "max")
    return "  ".join(f"{k} {fmt.format(summary[k])}" for k in keys if k in summary)


def render_run(name: str, res: Result) -> list[str]:
    """Human lines for one run."""
    errors = res["errors"]
    lines = [
        f"{name}: {res['url']}",
        (f"  requests     {res['responses']} in {res['elapsed_s']:.2f} s = "
         f"{res['req_per_s']:.1f} req/s ({res['ok']} ok, {errors['total']} errors)"),
    ]
    if res["streams_per_s"] is not None:
        lines.append(f"  streams      {res['streams_per_s']:.1f} streams/s, "
                     f"{res['chunks_per_s']:.1f} chunks/s")
    lines.append(f"  latency ms   {_pcts(res['latency_ms'])}")
    lines.append(f"  ttfb ms      {_pcts(res['ttfb_ms'])}")
    if res["chunk_gap_ms"] is not None:
        lines.append(f"  chunk gap ms {_pcts(res['chunk_gap_ms'])}")
    if errors["total"]:
        kinds = ", ".join(f"{k} {v}" for k, v in errors.items() if k != "total")
        lines.append(f"  errors       {kinds}")
    if res["rss"] is not None:
        lines.append(f"  server RSS   peak {_mib(res['rss']['peak_bytes'])} sampled, "
                     f"VmHWM {_mib(res['rss']['hwm_bytes'])}")
    return lines


def render(report: Result) -> str:
    """The whole human report."""
    plan = report["plan"]
    budget = f"{plan['duration']} s" if plan["duration"] is not None else f"{plan['requests']} requests"
    lines = [(f"modelmux bench: {'stream' if plan['stream'] else 'no-stream'}, "
              f"{plan['concurrency']} connections, {budget}, warmup {plan['warmup']}, "
              f"payload {plan['payload_bytes']} B")]
    for name, res in report["runs"].items():
        if res is not None:
            lines += render_run(name, res)
    if report.get("overhead"):
        over = report["overhead"]
        lines.append("overhead (proxy - direct):")
        lines.append(f"  latency ms   {_pcts(over['latency_ms'], sign=True)}")
        lines.append(f"  ttfb ms      {_pcts(over['ttfb_ms'], sign=True)}")
        ratio = over["throughput_ratio"]
        lines.append(f"  throughput   {'-' if ratio is None else f'{ratio:.3f}'} x direct")
    if report.get("proxy_unavailable"):
        lines.append(f"proxy: not measured: {report['proxy_unavailable']}")
    return "\n".join(lines)


class Progress:
    """A one-line status rewritten in place about twice a second (for terminals only)."""

    def __init__(self, out: TextIO, label: str) -> None:
        self.out = out
        self.label = label
        self.next_ns = 0
        self.drawn = False

    def __call__(self, run: LoadRun) -> None:
        from time import perf_counter_ns

        now = perf_counter_ns()
        if now < self.next_ns:
            return
        self.next_ns = now + 500_000_000
        tally = run.tally
        seconds = run.elapsed_s
        phase = f"{seconds:6.1f} s" if run.measuring else "warmup  "
        rate = tally.responses / seconds if seconds > 0 else 0.0
        errors = sum(tally.errors.values())
        self.out.write(f"\r\x1b[K{self.label} {phase}  {tally.responses} responses  "
                       f"{rate:.0f} req/s  {errors} errors")
        self.out.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.out.write("\r\x1b[K")
            self.out.flush()

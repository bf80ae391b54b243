"""Bandwidth traces: how many bytes a link can deliver by each moment.

A trace is a *cumulative service curve* ``S(t)``: the bytes the link could have
delivered in ``[0, t)`` had it always had something to send. The emulator only
asks two things of it, ``delivered_bytes(t)`` and its inverse
``time_of_byte(position)``, so the two trace families below share one queue:

* :class:`RateTrace`: piecewise-constant rates, the two-column ``seconds Mbit/s``
  format of the Pensieve / Riiser et al. / FCC traces. ``S`` is continuous.
* :class:`OpportunityTrace`: Mahimahi's format (Netravali et al., "Mahimahi:
  Accurate Record-and-Replay for HTTP", USENIX ATC 2015): one line per
  delivery opportunity of 1500 bytes, timestamps in integer milliseconds, a
  repeated line meaning several packets in that millisecond. ``S`` is a step
  function. As in Mahimahi's ``LinkQueue``, bytes of an opportunity that find the
  queue empty are lost, and a packet may span several opportunities.

Both loop at the end, as Mahimahi does. Scaling (``scale=``) multiplies the
capacity: a rate trace's rates, or an opportunity trace's bytes per opportunity
(1500 × scale), which keeps Mahimahi's timing but lets a kbit/s link carry
packets of a few tens of bytes without waiting a whole second per opportunity.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

MAHIMAHI_PACKET_BYTES = 1500


class TraceFormatError(ValueError):
    """A trace file that cannot be read; the message names the file and line."""


@runtime_checkable
class Trace(Protocol):
    """What the link emulator needs from a bandwidth trace."""

    @property
    def name(self) -> str: ...

    @property
    def period_s(self) -> float:
        """Length of one loop of the trace in seconds."""
        ...

    def delivered_bytes(self, t: float) -> float:
        """Bytes the link could deliver in ``[0, t)`` (opportunities strictly before ``t``)."""
        ...

    def time_of_byte(self, position: float) -> float:
        """Earliest time at which cumulative service reaches ``position`` bytes."""
        ...


def mean_rate_bps(trace: Trace, t0: float, t1: float) -> float:
    """Mean capacity over ``[t0, t1)`` in bit/s."""
    if t1 <= t0:
        raise ValueError(f"empty interval [{t0}, {t1})")
    return (trace.delivered_bytes(t1) - trace.delivered_bytes(t0)) * 8.0 / (t1 - t0)


@dataclass(frozen=True)
class RateTrace:
    """Piecewise-constant capacity: ``rates_bps[i]`` holds on ``[times_s[i], times_s[i+1])``.

    The last rate holds until ``period_s``; then the trace repeats.
    """

    times_s: tuple[float, ...]
    rates_bps: tuple[float, ...]
    period_s: float
    name: str = "rate"
    _cum: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.times_s)
        if n == 0 or n != len(self.rates_bps):
            raise ValueError(
                f"times ({n}) and rates ({len(self.rates_bps)}) must be equal, non-empty"
            )
        if self.times_s[0] != 0.0:
            raise ValueError(f"a rate trace starts at t=0, got {self.times_s[0]}")
        if any(b <= a for a, b in zip(self.times_s, self.times_s[1:], strict=False)):
            raise ValueError("trace times must increase strictly")
        if not self.period_s > self.times_s[-1]:
            raise ValueError(f"period {self.period_s} must exceed the last time {self.times_s[-1]}")
        if any(not math.isfinite(r) or r < 0 for r in self.rates_bps):
            raise ValueError("rates must be finite and non-negative")
        ends = (*self.times_s[1:], self.period_s)
        cum = [0.0]
        for t0, t1, r in zip(self.times_s, ends, self.rates_bps, strict=True):
            cum.append(cum[-1] + r / 8.0 * (t1 - t0))
        if cum[-1] <= 0:
            raise ValueError(f"trace {self.name!r} delivers nothing (all rates are zero)")
        object.__setattr__(self, "_cum", tuple(cum))

    @classmethod
    def constant(cls, rate_bps: float, period_s: float = 1.0, name: str = "constant") -> RateTrace:
        return cls((0.0,), (float(rate_bps),), float(period_s), name)

    @classmethod
    def from_segments(
        cls, segments: list[tuple[float, float]], name: str = "segments"
    ) -> RateTrace:
        """Build from ``[(duration_s, rate_bps), ...]``."""
        times, rates, t = [], [], 0.0
        for duration, rate in segments:
            times.append(t)
            rates.append(float(rate))
            t += float(duration)
        return cls(tuple(times), tuple(rates), t, name)

    @property
    def bytes_per_period(self) -> float:
        return self._cum[-1]

    @property
    def mean_bps(self) -> float:
        return self._cum[-1] * 8.0 / self.period_s

    def rate_at(self, t: float) -> float:
        r = t % self.period_s
        return self.rates_bps[bisect.bisect_right(self.times_s, r) - 1]

    def delivered_bytes(self, t: float) -> float:
        if t <= 0.0:
            return 0.0
        n, r = divmod(t, self.period_s)
        i = bisect.bisect_right(self.times_s, r) - 1
        return n * self._cum[-1] + self._cum[i] + self.rates_bps[i] / 8.0 * (r - self.times_s[i])

    def time_of_byte(self, position: float) -> float:
        if position <= 0.0:
            return 0.0
        total = self._cum[-1]
        n = math.floor(position / total)
        rem = position - n * total
        if rem <= 0.0:  # exactly at a loop boundary: the byte completed in loop n-1
            n -= 1
            rem = total
        j = bisect.bisect_left(self._cum, rem) - 1  # _cum[j] < rem <= _cum[j+1], rate_j > 0
        return n * self.period_s + self.times_s[j] + (rem - self._cum[j]) * 8.0 / self.rates_bps[j]

    def scaled(self, factor: float, name: str | None = None) -> RateTrace:
        if not factor > 0:
            raise ValueError(f"scale must be positive, got {factor}")
        return RateTrace(
            self.times_s,
            tuple(r * factor for r in self.rates_bps),
            self.period_s,
            name or self.name,
        )


@dataclass(frozen=True)
class OpportunityTrace:
    """Mahimahi delivery opportunities: ``opportunity_bytes`` may leave at each time.

    ``times_s`` are sorted opportunity times within one loop; the loop length is
    the last timestamp, as in Mahimahi.
    """

    times_s: tuple[float, ...]
    opportunity_bytes: float = float(MAHIMAHI_PACKET_BYTES)
    name: str = "mahimahi"

    def __post_init__(self) -> None:
        if not self.times_s:
            raise ValueError("an opportunity trace needs at least one opportunity")
        if any(b < a for a, b in zip(self.times_s, self.times_s[1:], strict=False)):
            raise ValueError("opportunity times must not decrease")
        if self.times_s[0] < 0 or self.times_s[-1] <= 0:
            raise ValueError("opportunity times must be >= 0 with a positive last time")
        if not self.opportunity_bytes > 0:
            raise ValueError("bytes per opportunity must be positive")

    @property
    def period_s(self) -> float:
        return self.times_s[-1]

    @property
    def mean_bps(self) -> float:
        return len(self.times_s) * self.opportunity_bytes * 8.0 / self.period_s

    def _count_before(self, t: float) -> int:
        """Opportunities strictly before ``t`` over all loops."""
        if t <= 0.0:
            return 0
        period = self.period_s
        n = math.floor(t / period)
        r = t - n * period
        if r <= 0.0:  # t is a loop boundary: count loop n-1 up to (not at) its end
            n -= 1
            r = period
        return n * len(self.times_s) + bisect.bisect_left(self.times_s, r)

    def delivered_bytes(self, t: float) -> float:
        return self._count_before(t) * self.opportunity_bytes

    def time_of_byte(self, position: float) -> float:
        if position <= 0.0:
            return 0.0
        index = math.ceil(position / self.opportunity_bytes - 1e-9) - 1
        n, j = divmod(index, len(self.times_s))
        return n * self.period_s + self.times_s[j]

    def scaled(self, factor: float, name: str | None = None) -> OpportunityTrace:
        if not factor > 0:
            raise ValueError(f"scale must be positive, got {factor}")
        return OpportunityTrace(self.times_s, self.opportunity_bytes * factor, name or self.name)


def _content_lines(path: Path) -> list[tuple[int, str]]:
    """Numbered non-empty lines with ``#`` comments stripped."""
    try:
        text = path.read_text()
    except UnicodeDecodeError as e:
        raise TraceFormatError(f"{path}: not a text file ({e})") from e
    out = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append((lineno, line))
    if not out:
        raise TraceFormatError(f"{path}: no samples")
    return out


def read_mahimahi(
    path: str | Path, scale: float = 1.0, name: str | None = None
) -> OpportunityTrace:
    """Read a Mahimahi trace: one integer millisecond timestamp per line, non-decreasing."""
    path = Path(path)
    times: list[float] = []
    last = -1
    for lineno, line in _content_lines(path):
        try:
            ms = int(line)
        except ValueError:
            raise TraceFormatError(
                f"{path}:{lineno}: expected one integer timestamp in ms, got {line!r}"
            ) from None
        if ms < 0:
            raise TraceFormatError(f"{path}:{lineno}: negative timestamp {ms}")
        if ms < last:
            raise TraceFormatError(f"{path}:{lineno}: timestamp {ms} goes back (previous {last})")
        last = ms
        times.append(ms / 1000.0)
    if times[-1] <= 0:
        raise TraceFormatError(
            f"{path}: the last timestamp must be positive (it is the loop length)"
        )
    return OpportunityTrace(tuple(times), MAHIMAHI_PACKET_BYTES * scale, name or path.stem)


def read_two_column(
    path: str | Path, scale: float = 1.0, name: str | None = None, period_s: float | None = None
) -> RateTrace:
    """Read ``seconds Mbit/s`` lines (whitespace separated), as the Pensieve traces are.

    Times must increase strictly; a first time other than 0 is shifted to 0. The
    last sample lasts the median sample interval (or until ``period_s``), then
    the trace loops.
    """
    path = Path(path)
    times: list[float] = []
    rates: list[float] = []
    for lineno, line in _content_lines(path):
        cols = line.split()
        if len(cols) != 2:
            raise TraceFormatError(
                f"{path}:{lineno}: expected 2 columns 'seconds Mbit/s', got {len(cols)}: {line!r}"
            )
        try:
            t, mbps = float(cols[0]), float(cols[1])
        except ValueError:
            raise TraceFormatError(f"{path}:{lineno}: not a number in {line!r}") from None
        if not (math.isfinite(t) and math.isfinite(mbps)):
            raise TraceFormatError(f"{path}:{lineno}: non-finite value in {line!r}")
        if mbps < 0:
            raise TraceFormatError(f"{path}:{lineno}: negative bandwidth {mbps}")
        if times and t <= times[-1]:
            raise TraceFormatError(
                f"{path}:{lineno}: time {t} does not increase (previous {times[-1]})"
            )
        times.append(t)
        rates.append(mbps * 1e6 * scale)
    t0 = times[0]
    times = [t - t0 for t in times]
    if period_s is None:
        gaps = [b - a for a, b in itertools.pairwise(times)]
        period_s = times[-1] + (statistics.median(gaps) if gaps else 1.0)
    try:
        return RateTrace(tuple(times), tuple(rates), float(period_s), name or path.stem)
    except ValueError as e:
        raise TraceFormatError(f"{path}: {e}") from None


def read_trace(path: str | Path, scale: float = 1.0, name: str | None = None) -> Trace:
    """Read either format, told apart by the number of columns on the first sample line."""
    path = Path(path)
    _, first = _content_lines(path)[0]
    if len(first.split()) == 1:
        return read_mahimahi(path, scale, name)
    return read_two_column(path, scale, name)


def write_two_column(trace: RateTrace, path: str | Path, header: str = "") -> None:
    """Write ``seconds Mbit/s`` lines (the format :func:`read_two_column` reads)."""
    lines = [f"# {h}" for h in header.splitlines()]
    lines += [f"{t:.3f} {r / 1e6:.6f}" for t, r in zip(trace.times_s, trace.rates_bps, strict=True)]
    Path(path).write_text("\n".join(lines) + "\n")

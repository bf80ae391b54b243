"""Trace-driven link emulation in simulated time (no network, no learned models).

* :mod:`embodied.link.traces`: bandwidth traces (Mahimahi and two-column readers).
* :mod:`embodied.link.emulator`: drop-tail bottleneck, propagation delay, random and
  Gilbert–Elliott loss, per-packet transport overhead.
* :mod:`embodied.link.synthetic`: seeded Markov-modulated traces and the shipped ones.
* :mod:`embodied.link.models`: bytes and compute time of a frame at budget k.
* :mod:`embodied.link.catalog`: the traces shipped in ``embodied/traces/``.
"""

from embodied.link.emulator import (
    UDP_IPV4_OVERHEAD_BYTES,
    GilbertElliott,
    LinkConfig,
    LinkEmulator,
    PacketResult,
)
from embodied.link.traces import (
    OpportunityTrace,
    RateTrace,
    Trace,
    TraceFormatError,
    mean_rate_bps,
    read_mahimahi,
    read_trace,
    read_two_column,
)

__all__ = [
    "UDP_IPV4_OVERHEAD_BYTES",
    "GilbertElliott",
    "LinkConfig",
    "LinkEmulator",
    "OpportunityTrace",
    "PacketResult",
    "RateTrace",
    "Trace",
    "TraceFormatError",
    "mean_rate_bps",
    "read_mahimahi",
    "read_trace",
    "read_two_column",
]

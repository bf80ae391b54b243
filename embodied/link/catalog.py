"""The traces shipped in ``embodied/traces/``, one spec object per trace.

Measured traces are kept byte for byte as published (``measured/``, with
``LICENSE.pensieve`` and a README naming each original file) and scaled when
read: ``MEASURED_SCALE`` = 1/64, one camera's share of a link that 64 camera
streams share (say 16 robots with 4 cameras in one 3G cell). Their median
throughput of about 0.8-1.2 Mbit/s becomes 12-20 kbit/s, where a token
budget of 1..64 at 30 frames/s (3.8-17.5 kbit/s on the wire with 8-byte
framing) is what the link can or cannot carry. Synthetic traces are generated
at that scale already (``embodied.link.synthetic``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from embodied.link import profiles, synthetic
from embodied.link.emulator import LinkConfig
from embodied.link.profiles import LinkParams
from embodied.link.traces import Trace, read_trace
from embodied.registry import Registry

TRACES_DIR = Path(__file__).resolve().parent.parent / "traces"
MEASURED_SCALE = 1.0 / 64.0


@dataclass(frozen=True)
class TraceEntry:
    name: str
    kind: Literal["synthetic", "measured", "narrowband"]
    path: Path
    scale: float
    description: str
    source: str
    link: LinkParams = field(default_factory=LinkParams)  # a profile's own link parameters

    def load(self) -> Trace:
        return read_trace(self.path, scale=self.scale, name=self.name)

    def link_config(self, config: LinkConfig) -> LinkConfig:
        """``config`` with this trace's own link parameters (a profile's) in place."""
        return self.link.apply(config)


_PENSIEVE = "Pensieve traces (Mao et al., SIGCOMM 2017; MIT licence)"
_RIISER = (
    "Riiser et al., 'Commute Path Bandwidth Traces from 3G Networks', MMSys 2013, via " + _PENSIEVE
)
_FCC = "FCC Measuring Broadband America 2016 (public), via " + _PENSIEVE

MEASURED: tuple[TraceEntry, ...] = (
    TraceEntry(
        "oslo-metro",
        "measured",
        TRACES_DIR / "measured" / "oslo-metro-2010-09-14.txt",
        MEASURED_SCALE,
        "3G on the Oslo metro, Kalbakken-Jernbanetorget; tunnels drop to the 0.1 Mbit/s floor",
        _RIISER + "; metro.kalbakken-jernbanetorget-report.2010-09-14_1038CEST.log",
    ),
    TraceEntry(
        "oslo-tram",
        "measured",
        TRACES_DIR / "measured" / "oslo-tram-2010-12-16.txt",
        MEASURED_SCALE,
        "3G on an Oslo tram, Ljabru-Jernbanetorget",
        _RIISER + "; tram.ljabru-jernbanetorget-report.2010-12-16_1215CET.log",
    ),
    TraceEntry(
        "fcc-7540",
        "measured",
        TRACES_DIR / "measured" / "fcc-7540.txt",
        MEASURED_SCALE,
        "fixed broadband with drops to zero, one sample per 5 s",
        _FCC + "; trace_7540_http---www.yahoo.com",
    ),
    TraceEntry(
        "fcc-797700",
        "measured",
        TRACES_DIR / "measured" / "fcc-797700.txt",
        MEASURED_SCALE,
        "steady fixed broadband, one sample per 5 s",
        _FCC + "; trace_797700_http---www.yahoo.com",
    ),
)

SYNTHETIC: tuple[TraceEntry, ...] = tuple(
    TraceEntry(
        spec.name,
        "synthetic",
        synthetic.SYNTHETIC_DIR / f"{spec.name}.txt",
        1.0,
        spec.description,
        "embodied.link.synthetic.SHIPPED (embodied link-sim --generate)",
    )
    for spec in synthetic.SHIPPED
)

SHIPPED: tuple[TraceEntry, ...] = SYNTHETIC + MEASURED

#: the narrowband profiles (embodied.link.profiles): a trace and the link's own parameters
NARROWBAND: tuple[TraceEntry, ...] = tuple(
    TraceEntry(p.name, "narrowband", p.path, p.scale, p.description, p.source, p.link)
    for p in profiles.PROFILES
)

#: every trace and profile by name (refuses a name twice; unknown names get "did you mean")
TRACES: Registry[TraceEntry] = Registry("trace")
for _e in SHIPPED + NARROWBAND:
    TRACES.add(_e.name, _e)


def entry(name: str) -> TraceEntry:
    """The shipped trace ``name``; :class:`~embodied.registry.UnknownName` (a ``KeyError``)
    lists the valid ones."""
    return TRACES.get(name)

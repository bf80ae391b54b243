"""Narrowband link profiles: links where every byte counts, each with its own link parameters.

A profile is a bandwidth trace (the bottleneck's service curve) **and** what else the link is:
its one-way propagation delay, the framing every packet pays on it, its queue and its random
loss. ``embodied eval --traces lora,...`` and ``embodied link-sim`` use all of it (the shipped
video-link traces keep the emulator's defaults). The traces are generated, deterministic by
seed, into ``embodied/traces/narrowband/`` with a README naming the sources of every number
(``embodied link-sim --generate`` rewrites them with the synthetic ones).

* ``lora``: a LoRa radio at SF7 / 125 kHz, 5.47 kbit/s on air (Semtech AN1200.22, "LoRa
  Modulation Basics": R_b = SF · BW / 2^SF · CR = 7 · 125e3 / 128 · 4/5), in the 869.4-869.65 MHz
  sub-band whose duty cycle is 10% (ETSI EN 300 220-2, band 54; the LoRaWAN EU868 "g3" band),
  modelled as 100 ms on air in every second (mean 547 bit/s); 13 bytes of LoRaWAN MAC per
  packet (MHDR 1 + FHDR 7 + FPort 1 + MIC 4, LoRaWAN 1.0.3 §4), a radio buffer of 256 bytes.
* ``acoustic``: an underwater acoustic modem at 1.5 km: 1.5-6 kbit/s as multipath fading
  moves it (commercial modems quote 1-15 kbit/s at short range, e.g. WHOI Micro-Modem 80-5,400
  bit/s, EvoLogics S2C R 18/34 up to 13.9 kbit/s; Stojanovic & Preisig, IEEE Comm. Mag. 2009,
  on the channel), 1-4 s shadowing outages, **1.0 s propagation** (sound at 1,500 m/s), 16 bytes
  of modem framing, 1% packet loss.
* ``satellite``: a GEO-class satellite IoT uplink, 6-14 kbit/s, **0.28 s one way** (35,786 km
  up and down at the speed of light is 0.239 s, plus ground segment), UDP/IPv4 framing (28
  bytes), rare rain-fade outages.
* ``crowded-cell``: one camera's share of a 3G cell crowded with robots: the measured Oslo tram
  trace (Riiser et al., MMSys 2013, via the Pensieve traces, MIT) scaled to 1/256 (64 robots ×
  4 cameras, 3.0 kbit/s mean), UDP/IPv4 framing, 50 ms propagation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from embodied.link.emulator import LinkConfig
from embodied.link.synthetic import MarkovTraceSpec, StepTraceSpec, generate
from embodied.link.traces import write_two_column

NARROWBAND_DIR = Path(__file__).resolve().parent.parent / "traces" / "narrowband"


@dataclass(frozen=True)
class LinkParams:
    """What a profile sets of :class:`~embodied.link.emulator.LinkConfig` (None: the default)."""

    propagation_delay_s: float | None = None
    overhead_bytes: int | None = None
    queue_limit_bytes: float | None = None
    loss_rate: float | None = None

    def apply(self, config: LinkConfig) -> LinkConfig:
        """``config`` with this profile's parameters in place of its own."""
        return replace(config, **{k: v for k, v in asdict(self).items() if v is not None})

    def describe(self) -> str:
        parts = []
        if self.propagation_delay_s is not None:
            parts.append(f"{self.propagation_delay_s * 1e3:g} ms one way")
        if self.overhead_bytes is not None:
            parts.append(f"{self.overhead_bytes} B framing")
        if self.queue_limit_bytes is not None:
            parts.append(f"{self.queue_limit_bytes:g} B queue")
        if self.loss_rate:
            parts.append(f"{self.loss_rate:.0%} loss")
        return ", ".join(parts)


@dataclass(frozen=True)
class NarrowbandProfile:
    name: str
    description: str
    source: str
    link: LinkParams
    spec: MarkovTraceSpec | StepTraceSpec | None = None  # generated here
    measured: tuple[str, float] | None = None  # (shipped measured trace name, scale)

    @property
    def path(self) -> Path:
        if self.measured is not None:
            return NARROWBAND_DIR.parent / "measured" / _MEASURED_FILES[self.measured[0]]
        return NARROWBAND_DIR / f"{self.name}.txt"

    @property
    def scale(self) -> float:
        return 1.0 if self.measured is None else self.measured[1]


_MEASURED_FILES = {"oslo-tram": "oslo-tram-2010-12-16.txt"}

PROFILES: tuple[NarrowbandProfile, ...] = (
    NarrowbandProfile(
        "lora",
        "LoRa SF7/125 kHz (5.47 kbit/s on air), 10% duty cycle as 100 ms on air per second",
        "Semtech AN1200.22; ETSI EN 300 220-2 (869.4-869.65 MHz, 10%); LoRaWAN 1.0.3 MAC",
        LinkParams(propagation_delay_s=0.03, overhead_bytes=13, queue_limit_bytes=256.0),
        spec=StepTraceSpec(
            "lora",
            "5.47 kbit/s for 0.1 s, silent 0.9 s (10% duty cycle)",
            steps=((0.1, 5.47),) + ((0.1, 0.0),) * 9,  # 0.1 s samples: the file keeps 1 s
        ),
    ),
    NarrowbandProfile(
        "acoustic",
        "underwater acoustic modem at 1.5 km: 1.5-6 kbit/s fading, outages, 1 s propagation",
        "WHOI Micro-Modem, EvoLogics S2C datasheets; Stojanovic & Preisig, IEEE Comm. Mag. 2009",
        LinkParams(
            propagation_delay_s=1.0, overhead_bytes=16, queue_limit_bytes=1024.0, loss_rate=0.01
        ),
        spec=MarkovTraceSpec(
            "acoustic",
            "levels 1.5-6 kbit/s, dwell 4 s, 30% fading, outages 1-4 s every ~30 s",
            duration_s=240.0,
            levels_kbps=(1.5, 3.0, 4.5, 6.0),
            mean_dwell_s=4.0,
            noise_sigma=0.3,
            noise_corr_s=1.0,
            outage_every_s=30.0,
            outage_s=(1.0, 4.0),
            dt_s=0.2,
            seed=11,
        ),
    ),
    NarrowbandProfile(
        "satellite",
        "GEO-class satellite IoT uplink, 6-14 kbit/s, 0.28 s one way, rare rain fades",
        "GEO altitude 35,786 km (0.239 s up and down at c) + ground segment; UDP/IPv4 framing",
        LinkParams(propagation_delay_s=0.28, overhead_bytes=28, queue_limit_bytes=2048.0),
        spec=MarkovTraceSpec(
            "satellite",
            "levels 6-14 kbit/s, dwell 10 s, 10% noise, fades of 2-6 s every ~60 s",
            duration_s=240.0,
            levels_kbps=(6.0, 10.0, 14.0),
            mean_dwell_s=10.0,
            noise_sigma=0.1,
            noise_corr_s=2.0,
            outage_every_s=60.0,
            outage_s=(2.0, 6.0),
            dt_s=0.5,
            seed=12,
        ),
    ),
    NarrowbandProfile(
        "crowded-cell",
        "one camera's share of a crowded 3G cell: Oslo tram trace / 256 (3.0 kbit/s mean)",
        "Riiser et al., MMSys 2013, via the Pensieve traces (Mao et al., SIGCOMM 2017; MIT)",
        LinkParams(propagation_delay_s=0.05, overhead_bytes=28, queue_limit_bytes=3000.0),
        measured=("oslo-tram", 1.0 / 256.0),
    ),
)


def write_narrowband(out_dir: str | Path = NARROWBAND_DIR) -> list[Path]:
    """Generate the profiles' synthetic traces and the README of all four; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, rows = [], []
    for p in PROFILES:
        if p.spec is not None:
            trace = generate(p.spec)
            params = ", ".join(
                f"{f.name}={getattr(p.spec, f.name)}"
                for f in fields(p.spec)
                if f.name not in ("name", "description")
            )
            path = out / f"{p.name}.txt"
            write_two_column(trace, path, header=(
                f"narrowband profile {p.name!r}: {p.description}\n"
                f"made by embodied.link.profiles ({type(p.spec).__name__}: {params})\n"
                f"link: {p.link.describe()}\nsources: {p.source}\ncolumns: seconds Mbit/s"
            ))  # fmt: skip
            paths.append(path)
            how = f"`{type(p.spec).__name__}({params})`"
        else:
            assert p.measured is not None
            how = f"measured `{p.measured[0]}` × {p.measured[1]:.6g}"
        rows.append(f"| `{p.name}` | {p.description} | {p.link.describe()} | {how} | {p.source} |")
    readme = out / "README.md"
    readme.write_text(
        "# Narrowband link profiles\n\n"
        "Made by `embodied.link.profiles` (regenerate: `embodied link-sim --generate`). A profile "
        "is a trace and the link's own parameters (propagation, framing, queue, loss), which "
        "`embodied eval --traces` and `embodied link-sim` apply. Format: `seconds Mbit/s`, the "
        "trace loops.\n\n| profile | what | link | how made | sources |\n|---|---|---|---|---|\n"
        + "\n".join(rows) + "\n"
    )  # fmt: skip
    paths.append(readme)
    return paths


__all__ = ["NARROWBAND_DIR", "PROFILES", "LinkParams", "NarrowbandProfile", "write_narrowband"]

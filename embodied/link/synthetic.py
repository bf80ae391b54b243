"""Synthetic bandwidth traces: Markov-modulated levels with noise and outages.

A cellular link's capacity dwells at a level for seconds, then moves to a
neighbouring one (a birth–death Markov chain, the structure of the Markov
models of cellular throughput such as Sprout's, Winstein et al. NSDI 2013);
on top sits correlated multiplicative noise (log-AR(1)) and, optionally, outages
of zero capacity arriving as a Poisson process (tunnels, handovers).

Everything is drawn from one seeded generator, so a spec always yields the
same trace. :data:`SHIPPED` lists the traces kept in
``embodied/traces/synthetic/``; regenerate them with::

    embodied link-sim --generate            # writes embodied/traces/synthetic/
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from embodied.link.traces import RateTrace, write_two_column

SYNTHETIC_DIR = Path(__file__).resolve().parent.parent / "traces" / "synthetic"


@dataclass(frozen=True)
class MarkovTraceSpec:
    """A Markov-modulated trace; rates in kbit/s."""

    name: str
    description: str
    duration_s: float
    levels_kbps: tuple[float, ...]
    mean_dwell_s: float = 3.0  # mean time at one level before moving to a neighbour
    noise_sigma: float = 0.0  # σ of the log-AR(1) multiplicative noise
    noise_corr_s: float = 0.5  # its time constant
    outage_every_s: float = 0.0  # mean time between outages; 0: none
    outage_s: tuple[float, float] = (1.0, 3.0)  # outage length, uniform in this range
    dt_s: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.levels_kbps or any(v <= 0 for v in self.levels_kbps):
            raise ValueError("levels_kbps must be positive and non-empty")
        if self.duration_s <= self.dt_s or self.dt_s <= 0:
            raise ValueError("need 0 < dt_s < duration_s")


@dataclass(frozen=True)
class StepTraceSpec:
    """Piecewise-constant steps ``[(duration_s, kbit/s), ...]``, no randomness."""

    name: str
    description: str
    steps: tuple[tuple[float, float], ...]


def generate_markov(spec: MarkovTraceSpec) -> RateTrace:
    rng = np.random.default_rng(spec.seed)
    n = round(spec.duration_s / spec.dt_s)
    levels = np.asarray(spec.levels_kbps, dtype=float)
    p_move = 1.0 - math.exp(-spec.dt_s / spec.mean_dwell_s)
    a = math.exp(-spec.dt_s / spec.noise_corr_s)
    state = len(levels) // 2
    z = 0.0
    rates = np.empty(n)
    for i in range(n):
        if len(levels) > 1 and rng.random() < p_move:
            step = 1 if rng.random() < 0.5 else -1
            if not 0 <= state + step < len(levels):
                step = -step
            state += step
        z = a * z + math.sqrt(1 - a * a) * rng.standard_normal()
        noise = math.exp(spec.noise_sigma * z - spec.noise_sigma**2 / 2)
        rates[i] = levels[state] * noise
    if spec.outage_every_s > 0:
        t = rng.exponential(spec.outage_every_s)
        while t < spec.duration_s:
            length = rng.uniform(*spec.outage_s)
            rates[int(t / spec.dt_s) : int((t + length) / spec.dt_s)] = 0.0
            t += length + rng.exponential(spec.outage_every_s)
    times = tuple(round(i * spec.dt_s, 6) for i in range(n))
    rates_bps = tuple(float(round(r, 3)) * 1e3 for r in rates)
    return RateTrace(times, rates_bps, n * spec.dt_s, spec.name)


def generate_step(spec: StepTraceSpec) -> RateTrace:
    return RateTrace.from_segments([(d, kbps * 1e3) for d, kbps in spec.steps], spec.name)


def generate(spec: MarkovTraceSpec | StepTraceSpec) -> RateTrace:
    return generate_step(spec) if isinstance(spec, StepTraceSpec) else generate_markov(spec)


# Levels sit where budgets 1..64 at 30 frames/s matter: with the default
# 8-byte framing a frame costs 16-73 bytes on the wire, 3.8-17.5 kbit/s.
SHIPPED: tuple[MarkovTraceSpec | StepTraceSpec, ...] = (
    MarkovTraceSpec(
        name="stable",
        description="a steady narrowband link: one level, 5% slow noise",
        duration_s=60.0,
        levels_kbps=(12.0,),
        noise_sigma=0.05,
        noise_corr_s=2.0,
        dt_s=0.5,
        seed=1,
    ),
    MarkovTraceSpec(
        name="cellular",
        description="cellular-like: 6 levels 5-28 kbit/s, dwell 3 s, 25% noise",
        duration_s=180.0,
        levels_kbps=(5.0, 7.0, 10.0, 14.0, 20.0, 28.0),
        mean_dwell_s=3.0,
        noise_sigma=0.25,
        noise_corr_s=0.5,
        dt_s=0.2,
        seed=2,
    ),
    MarkovTraceSpec(
        name="outages",
        description="levels 8-16 kbit/s with zero-capacity outages of 1-3 s every ~20 s",
        duration_s=180.0,
        levels_kbps=(8.0, 12.0, 16.0),
        mean_dwell_s=5.0,
        noise_sigma=0.15,
        noise_corr_s=0.5,
        outage_every_s=20.0,
        outage_s=(1.0, 3.0),
        dt_s=0.2,
        seed=3,
    ),
    StepTraceSpec(
        name="step10x",
        description="80 kbit/s, a 10x step down to 8 kbit/s at 20 s, back up at 40 s",
        steps=((20.0, 80.0), (20.0, 8.0), (20.0, 80.0)),
    ),
)


def spec_by_name(name: str) -> MarkovTraceSpec | StepTraceSpec:
    for spec in SHIPPED:
        if spec.name == name:
            return spec
    raise KeyError(f"no synthetic trace {name!r}; shipped: {', '.join(s.name for s in SHIPPED)}")


def write_shipped(out_dir: str | Path = SYNTHETIC_DIR) -> list[Path]:
    """Regenerate the shipped synthetic traces and their README; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    rows = []
    for spec in SHIPPED:
        trace = generate(spec)
        params = ", ".join(
            f"{k}={v}" for k, v in asdict(spec).items() if k not in ("name", "description")
        )
        path = out / f"{spec.name}.txt"
        write_two_column(
            trace,
            path,
            header=(
                f"synthetic trace {spec.name!r}: {spec.description}\n"
                f"made by embodied.link.synthetic ({type(spec).__name__}: {params})\n"
                "regenerate: embodied link-sim --generate\n"
                "columns: seconds Mbit/s"
            ),
        )
        paths.append(path)
        rows.append(
            f"| `{spec.name}.txt` | {spec.description} | {trace.mean_bps / 1e3:.1f} | "
            f"{trace.period_s:.0f} | `{type(spec).__name__}({params})` |"
        )
    readme = out / "README.md"
    readme.write_text(
        "# Synthetic bandwidth traces\n\n"
        "Generated, deterministic by seed, by `embodied.link.synthetic` "
        "(specs in `SHIPPED` there); regenerate with `embodied link-sim --generate`.\n"
        "Format: `seconds Mbit/s` per line (the rate holds until the next line; "
        "the trace loops). Already at the scale of one camera's share of the link: "
        "no further scaling is applied.\n\n"
        "| file | what | mean kbit/s | seconds | spec |\n|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    paths.append(readme)
    return paths

"""``embodied bench policy``: one policy step's latency per token budget, per provider and precision.

What is timed is :meth:`embodied.policy.OnnxPolicy.infer` on one observation: input
validation, the ONNX Runtime call and the output check, i.e. what the robot pays per
step (the bare ``session.run`` median is shown beside it). The CPU provider runs with
``--threads`` intra-op threads (1 by default: the robot computer shares its cores);
CUDA and TensorRT rows appear where this onnxruntime build offers them.

Target (issue 4): p50 <= 2 ms and p99 <= 5 ms at 64 tokens, fp32, one CPU core.

    embodied bench policy --model-dir embodied/models/vla-recon [--json out.json]
    python -m policies.stub_policy /tmp/stub && embodied bench policy --model-dir /tmp/stub
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from embodied.modelfiles import (
    DEFAULT_POLICY,
    MODELS_DIR,
    POLICY_IO,
    POLICY_ONNX,
    PolicySpec,
    shipped,
    shipped_names,
)
from embodied.policy import OnnxPolicy

TARGET_P50_MS = 2.0
TARGET_P99_MS = 5.0


def _default_model_dir() -> Path | None:
    """The shipped vision policy (``vla-task``), else the first policy found."""
    names = shipped_names("policy")
    if not names:
        return None
    return shipped(DEFAULT_POLICY if DEFAULT_POLICY in names else names[0])


def _observation(spec: PolicySpec, budget: int, rng: np.random.Generator) -> dict:
    e = rng.standard_normal(spec.instruction_dim).astype(np.float32)
    return {
        "token_ids": rng.integers(0, spec.vocab, budget),
        "budget": budget,
        "instruction": e / np.linalg.norm(e),
        "proprio": rng.uniform(-1, 1, spec.proprio_dim).astype(np.float32),
    }


def _percentiles(samples_ns: list[int]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(samples_ns, np.float64) / 1e6, [50, 99])
    return float(p50), float(p99)


def bench_one(
    policy: OnnxPolicy, budgets: Sequence[int], iters: int, warmup: int, seed: int = 0
) -> list[dict]:
    """Latency rows for one (provider, precision) policy, one per budget."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in budgets:
        obs = [_observation(policy.spec, k, rng) for _ in range(16)]
        for i in range(warmup):
            policy.infer(obs[i % 16])
        step_ns: list[int] = []
        for i in range(iters):
            t0 = time.perf_counter_ns()
            policy.infer(obs[i % 16])
            step_ns.append(time.perf_counter_ns() - t0)
        # the bare model call on a prepared feed, to show what validation costs
        s = policy.spec
        token_ids = np.zeros((1, s.k_max), np.int64)
        token_ids[0, :k] = obs[0]["token_ids"]
        values = (
            token_ids,
            np.array([k], np.int64),
            np.asarray(obs[0]["instruction"], np.float32)[None],
            np.asarray(obs[0]["proprio"], np.float32)[None],
        )
        feed = dict(zip(POLICY_IO.input_names, values, strict=True))
        model_ns: list[int] = []
        for _ in range(max(iters // 4, 10)):
            t0 = time.perf_counter_ns()
            policy.session.run(None, feed)
            model_ns.append(time.perf_counter_ns() - t0)
        p50, p99 = _percentiles(step_ns)
        rows.append(
            {
                "provider": policy.provider,
                "precision": policy.precision,
                "budget": k,
                "iters": iters,
                "p50_ms": p50,
                "p99_ms": p99,
                "mean_ms": float(np.mean(step_ns) / 1e6),
                "model_p50_ms": _percentiles(model_ns)[0],
            }
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="embodied bench policy", description=(__doc__ or "").split("\n")[0]
    )
    ap.add_argument("--model-dir", type=Path, default=None, help="policy directory")
    ap.add_argument("--budgets", default="1,4,16,64", help="comma-separated token budgets")
    ap.add_argument("--precisions", default="fp32,fp16", help="fp32,fp16 (those present)")
    ap.add_argument(
        "--providers", default="cpu,cuda,tensorrt", help="which to try (absent ones are skipped)"
    )
    ap.add_argument("--threads", type=int, default=1, help="CPU intra-op threads (default 1)")
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="log provider choices")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)

    model_dir = args.model_dir or _default_model_dir()
    if model_dir is None:
        print(
            f"embodied bench policy: no policy found under {MODELS_DIR}; pass --model-dir (a "
            "random-init stand-in: `python -m policies.stub_policy /tmp/stub`)",
            file=sys.stderr,
        )
        return 2
    spec = PolicySpec.load(model_dir)
    budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    skipped = [b for b in budgets if not spec.budget_min <= b <= spec.budget_max]
    budgets = [b for b in budgets if b not in skipped]
    if skipped:
        print(f"skipping budgets {skipped}: outside {spec.budget_min}..{spec.budget_max}")
    import onnxruntime as ort

    from embodied.providers import ALIASES, CPU

    available = set(ort.get_available_providers())
    rows: list[dict] = []
    for pname in [p.strip() for p in args.providers.split(",") if p.strip()]:
        full = ALIASES.get(pname.lower(), pname)
        if full not in available:
            print(
                f"{pname}: not available in this onnxruntime build ({sorted(available)}), skipped"
            )
            continue
        chain = [full] if full == CPU else [full, CPU]
        for prec in [p.strip() for p in args.precisions.split(",") if p.strip()]:
            if not (model_dir / POLICY_ONNX.get(prec, "?")).is_file():
                print(f"{prec}: {POLICY_ONNX.get(prec, prec)} not in {model_dir}, skipped")
                continue
            policy = OnnxPolicy(model_dir, precision=prec, providers=chain, threads=args.threads)
            if policy.provider != full:
                print(f"{pname}: session fell back to {policy.provider}, skipped")
                continue
            rows += bench_one(policy, budgets, args.iters, args.warmup)

    print(f"policy {spec.name} ({model_dir}), threads={args.threads}, iters={args.iters}")
    print(
        f"{'provider':26s} {'prec':5s} {'k':>4s} {'p50 ms':>8s} {'p99 ms':>8s} {'model p50':>10s}"
    )
    for r in rows:
        print(
            f"{r['provider']:26s} {r['precision']:5s} {r['budget']:4d} {r['p50_ms']:8.3f} "
            f"{r['p99_ms']:8.3f} {r['model_p50_ms']:10.3f}"
        )
    cpu64 = [r for r in rows if r["provider"] == CPU and r["precision"] == "fp32"]
    if cpu64 and args.threads == 1:
        r = max(cpu64, key=lambda r: r["budget"])
        ok = r["p50_ms"] <= TARGET_P50_MS and r["p99_ms"] <= TARGET_P99_MS
        print(
            f"target (k={r['budget']}, CPU fp32, 1 thread): p50 <= {TARGET_P50_MS} ms, "
            f"p99 <= {TARGET_P99_MS} ms: {'met' if ok else 'NOT met'}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model_dir": str(model_dir), "rows": rows}, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

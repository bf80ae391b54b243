"""What the policy is trained on: budget mix (full budget included) and language augmentation
(paraphrases, never held-out phrasings)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from policies.data import DemoArrays  # noqa: E402
from policies.train import InstructionPool, _budgets_for_batch  # noqa: E402
from sim.suite import TASKS  # noqa: E402


def test_budget_mix_covers_every_budget_and_the_full_one():
    rng = np.random.default_rng(0)
    draws = [_budgets_for_batch(rng, 64, 64) for _ in range(2000)]
    full = np.mean([cap == 64 and (b == 64).all() for b, cap in draws])
    assert 0.1 < full < 0.2  # p_full = 0.15: the uncompressed reference is trained directly
    short = np.mean([cap <= 8 for _, cap in draws])
    assert short > 0.35  # log-uniform caps: short prefixes stay the most frequent
    seen = np.unique(np.concatenate([b for b, _ in draws]))
    assert seen.min() == 1 and seen.max() == 64 and len(seen) == 64


def _demo(tasks: list[str]) -> DemoArrays:
    instructions = [i for t in TASKS.values() for i in t.instructions]
    task_ids = np.array([list(TASKS).index(t) for t in tasks])
    instr = np.array([instructions.index(TASKS[t].train_instructions[0]) for t in tasks])
    n = len(tasks)
    z = np.zeros
    return DemoArrays(z((n, 64, 64, 3), np.uint8), z((n, 4), np.float32), instr, task_ids,
                      z((n, 4, 4), np.float32), np.ones((n, 4), np.float32), np.arange(n),
                      z(n, np.int64), instructions, list(TASKS), np.arange(n))  # fmt: skip


def test_instruction_pool_draws_only_training_phrasings_of_the_sample_task():
    data = _demo(["drawer-close"] * 200 + ["faucet-open"] * 200)
    pool = InstructionPool(data, np.random.default_rng(0), noise=0.0, p_drop=0.0)
    emb = pool(np.arange(400)).numpy()
    texts = pool.phrasings
    table = pool.emb.numpy()
    picked = [texts[int(np.argmax(table @ e))] for e in emb]
    assert set(picked[:200]) <= set(TASKS["drawer-close"].training_phrasings)
    assert set(picked[200:]) <= set(TASKS["faucet-open"].training_phrasings)
    assert len(set(picked[:200])) >= 8  # the whole pool is used, not one sentence
    held = {h for t in TASKS.values() for h in t.heldout_instructions}
    assert not held & set(texts)
    # noise keeps unit norm; dropout zeroes whole embeddings
    noisy = InstructionPool(data, np.random.default_rng(1), noise=0.02, p_drop=0.5)(np.arange(400))
    norms = noisy.norm(dim=1).numpy()
    assert np.all((np.abs(norms - 1) < 1e-5) | (norms == 0))
    assert 0.35 < np.mean(norms == 0) < 0.65
    # the cache covers every phrasing once (held-out ones included, for evaluation)
    names, vecs = pool.cache_entries()
    assert len(names) == len(set(names)) == len(vecs) and held <= set(names)

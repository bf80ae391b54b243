"""What the policy is trained on: budget mix (full budget included) and language augmentation
(paraphrases, never held-out phrasings)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from policies.data import DemoArrays  # noqa: E402
from policies.train.common import budgets_for_batch  # noqa: E402
from policies.train.instructions import InstructionPool  # noqa: E402
from sim.suite import TASKS  # noqa: E402


def test_budget_mix_covers_every_budget_and_the_full_one():
    rng = np.random.default_rng(0)
    draws = [budgets_for_batch(rng, 64, 64) for _ in range(2000)]
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


def test_belief_mix_blends_another_task_with_decreasing_weights():
    data = _demo(["drawer-close"] * 500 + ["faucet-open"] * 500)
    pool = InstructionPool(data, np.random.default_rng(0), p_mix=0.3)
    w, other = pool.belief_mix(np.arange(1000))
    w, other = w.numpy(), other.numpy()
    assert 0.2 < np.mean(w > 0) < 0.4  # p_mix = 0.3
    assert np.all((w >= 0) & (w < 1))
    mixed = w[w > 0]
    assert np.mean(mixed < 0.5) > 0.65  # Beta(1, 2): P(w < 0.5) = 0.75
    own = data.task[np.arange(1000)]
    assert np.all(other.argmax(1) != own) and np.allclose(other.sum(1), 1)
    assert InstructionPool(data, np.random.default_rng(0), augment=False).belief_mix(
        np.arange(4)) is None  # fmt: skip


def _belief_policy(tasks=("drawer-open", "drawer-close", "faucet-open")):
    from policies.vla import VLAPolicy

    torch.manual_seed(0)
    return VLAPolicy(k_max=8, vocab=1000, chunk=4, tasks=tasks).eval()


def _inputs(b: int, instruction):
    ids = torch.randint(0, 1000, (b, 8))
    return ids, torch.rand(b, 8, 4) * 2 - 1, torch.full((b,), 8), instruction, torch.randn(b, 4)


def test_task_belief_policy_language_paths():
    from policies.train.common import language_loss

    p = _belief_policy()
    e = torch.nn.functional.normalize(torch.randn(3, 384), dim=-1)
    zero = torch.zeros(3, 384)
    # no instruction: one learned token, whatever the task head says
    tok0 = p.instruction_token(zero)
    assert torch.allclose(tok0, p.no_instruction.expand(3, -1))
    # a full blend towards another task gives that task's token
    one_hot = torch.eye(3)[[1, 2, 0]]
    blended = p.instruction_token(e, (torch.ones(3), one_hot))
    assert torch.allclose(blended, p.task_vec(one_hot), atol=1e-6)
    with torch.no_grad():
        a = p(*_inputs(3, e))
        b = p(*_inputs(3, e), belief_mix=(torch.ones(3), one_hot))
    assert a.shape == (3, 4, 4) and not torch.allclose(a, b)
    # the language loss trains the belief, and skips samples with no instruction
    task = np.array([0, 1, 2])
    assert language_loss(p, zero, task).item() == 0.0
    opt = torch.optim.Adam(p.task_head.parameters(), 1e-2)
    first = language_loss(p, e, task).item()
    for _ in range(50):
        loss = language_loss(p, e, task)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert language_loss(p, e, task).item() < 0.2 * first
    assert (p.task_logits(e).argmax(1).numpy() == task).all()


def test_task_belief_policy_exports_and_reloads(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from policies.export import export_policy, load_policy
    from policies.tokenizer import Tokenizer

    tok = Tokenizer(k_max=8)
    p = _belief_policy()
    p.k_max, p.vocab = tok.k_max, tok.vocab
    meta = export_policy(p, tok, tmp_path, "vla-test", None, False, ["open the drawer"],
                         np.ones((1, 384), np.float32) / np.sqrt(384))  # fmt: skip
    assert meta["instruction_grounding"] == "task-belief"
    assert meta["tasks"] == ["drawer-open", "drawer-close", "faucet-open"]
    torch.save(p.state_dict(), tmp_path / "model.pt")
    again = load_policy(tmp_path).eval()
    assert again.tasks == p.tasks
    e = torch.nn.functional.normalize(torch.randn(2, 384), dim=-1)
    e[1] = 0  # no instruction goes through the exported graph too
    ids, _, budget, _, prop = _inputs(2, e)
    from policies.vla import PolicyExport

    with torch.no_grad():
        ref = PolicyExport(again, tok.levels).eval()(ids, budget, e, prop).numpy()
    sess = ort.InferenceSession(str(tmp_path / "policy.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"token_ids": ids.numpy(), "budget": budget.numpy(),
                          "instruction": e.numpy(), "proprio": prop.numpy()})[0]  # fmt: skip
    assert np.abs(got - ref).max() <= 1e-4
    # task_belief.onnx: the same softmax, with the task list in its metadata
    bel = ort.InferenceSession(str(tmp_path / "task_belief.onnx"),
                               providers=["CPUExecutionProvider"])  # fmt: skip
    tasks = json.loads(bel.get_modelmeta().custom_metadata_map["tasks"])
    assert tasks == list(p.tasks)
    with torch.no_grad():
        want = torch.softmax(again.task_logits(e[:1]), -1).numpy()
    assert np.abs(bel.run(None, {"instruction": e[:1].numpy()})[0] - want).max() <= 1e-5


def test_language_stage_keeps_the_trained_policy_and_adds_a_belief(tmp_path):
    """`embodied train language`: an MLP-grounded policy becomes a task-belief one, every other
    tensor carried over (here on the blind path, which needs no tokenizer)."""
    from policies.export import load_policy
    from policies.train import train_policy

    data = _demo(["drawer-close"] * 20 + ["faucet-open"] * 20)
    a, b = tmp_path / "a", tmp_path / "b"
    train_policy(data, None, a, steps=2, batch=8, blind=True, name="a", grounding="mlp")
    assert json.loads((a / "policy.json").read_text())["instruction_grounding"] == "mlp"
    train_policy(data, None, b, steps=1, batch=8, lr=1e-9, blind=True, name="b", init=a)
    meta = json.loads((b / "policy.json").read_text())
    assert meta["instruction_grounding"] == "task-belief" and meta["tasks"] == list(TASKS)
    old, new = load_policy(a).state_dict(), load_policy(b).state_dict()
    assert not any(k.startswith("task_") for k in old) and "task_head.weight" in new
    for name in ("body.layers.0.linear1.weight", "head.0.weight", "tok_emb.weight"):
        assert torch.allclose(old[name], new[name], atol=1e-6), name
    with pytest.raises(ValueError, match="valid: belief, mlp"):
        train_policy(data, None, tmp_path / "c", steps=1, blind=True, grounding="clip")

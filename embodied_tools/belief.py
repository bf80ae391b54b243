"""``embodied belief "open the tap" ...``: which task a policy reads each phrasing as.

Examples::

    embodied belief "open the tap" "shut the window" --top 2
    embodied belief "press the button" --policy vla-recon --json
"""

from __future__ import annotations

import argparse
import difflib
import json
from collections.abc import Sequence
from pathlib import Path

from embodied.instruction import InstructionEncoderUnavailable
from embodied.modelfiles import MODELS_DIR, POLICY_JSON, ModelFileError
from embodied.policy import OnnxPolicy, PolicyInputError


def main(argv: Sequence[str] | None = None) -> int:
    """``embodied belief "open the tap" ...``: which task a policy reads each phrasing as."""
    p = argparse.ArgumentParser(
        prog="embodied belief",
        description="Which task the policy reads each instruction as (its task belief). "
        "Phrasings outside the instruction cache are embedded by the exported encoder if one "
        "is configured, else by sentence-transformers (the `train` extra).",
    )
    p.add_argument("phrasings", nargs="+", help="instructions, quoted")
    p.add_argument("--policy", default="vla-task", help="policy directory name under --models")
    p.add_argument("--models", default=str(MODELS_DIR), help="directory of model directories")
    p.add_argument("--top", type=int, default=3, help="tasks shown per phrasing")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    a = p.parse_args(argv)
    if a.top < 1:
        p.error(f"--top must be >= 1, got {a.top}")
    root = Path(a.models)
    if not (root / a.policy / POLICY_JSON).is_file():
        have = sorted(d.parent.name for d in root.glob(f"*/{POLICY_JSON}")) if root.is_dir() else []
        close = difflib.get_close_matches(a.policy, have, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        p.error(f"no policy {a.policy!r} under {root}.{hint} Valid: {', '.join(have) or 'none'}")
    try:
        policy = OnnxPolicy(root / a.policy)
    except ModelFileError as e:
        p.error(str(e))
    out: dict[str, dict[str, float]] = {}
    for text in a.phrasings:
        try:
            belief = policy.task_belief(text)
        except InstructionEncoderUnavailable:
            try:  # a development machine: embed with the training-side encoder
                from policies.train.instructions import instruction_embeddings
            except ImportError as e:
                raise SystemExit(
                    f"embodied belief: {text!r} is not in the instruction cache and no encoder "
                    "is available (export one with policies.export_instruction, or install "
                    "the `train` extra)"
                ) from e
            belief = policy.task_belief(instruction_embeddings([text])[0])
        except (ModelFileError, PolicyInputError) as e:
            p.error(str(e))
        out[text] = belief
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    for text, belief in out.items():
        top = list(belief.items())[: a.top]
        shown = ", ".join(f"{t} {v:.2f}" for t, v in top)
        flag = "" if top[0][1] >= 0.5 else "   (unsure: no task above 0.5)"
        print(f"{text!r:40s} -> {shown}{flag}")
    return 0

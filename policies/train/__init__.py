"""Training on the CPU (torch): one module per ``embodied train`` stage; see :mod:`policies.train.cli`.

``from policies.train import main`` is the ``embodied train`` command; the stages are
:func:`train_tokenizer`, :func:`train_policy`, :func:`train_task`, :func:`train_language`.
"""

from __future__ import annotations

from policies.train.cli import main
from policies.train.language_stage import train_language
from policies.train.policy_stage import train_policy
from policies.train.task_stage import train_task
from policies.train.tokenizer_stage import train_tokenizer

__all__ = ["main", "train_language", "train_policy", "train_task", "train_tokenizer"]

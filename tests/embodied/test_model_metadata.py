"""Every ONNX file shipped (``embodied/models``) or committed as a fixture says what it is in its
``metadata_props`` (docs/models.md, "ONNX metadata"), read the way a stranger would: plain ONNX
Runtime. The files are found by glob, so a new one is covered without touching this test.

Also the byte-level metadata rewrite (``embodied.onnxmeta``): idempotent, and the model's id
(the hash without metadata) is the same before and after."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnxruntime as ort
import pytest

from embodied.modelfiles import (
    BELIEF_ONNX,
    ENCODER_ONNX,
    META_BUDGET,
    META_FORMAT,
    META_INPUTS,
    META_MODEL_ID,
    META_MODEL_NAME,
    META_OUTPUTS,
    META_ROLE,
    META_TOKENIZER_ID,
    MODELS_DIR,
    NO_TOKENIZER,
    ONNX_METADATA_KEYS,
    ONNX_ROLES,
    ORT_TYPES,
    POLICY_JSON,
    POLICY_ONNX,
    TOKENIZER_JSON,
    ModelFileError,
    PolicySpec,
    TokenizerSpec,
    model_dir_metadata,
    onnx_model_id,
    stamp_main,
    stamp_model_dir,
)
from embodied.onnxmeta import NotOnnx, read_metadata, with_metadata, without_metadata
from tests.fixtures.tiny_models import MODELS as FIXTURES

ROOTS = (MODELS_DIR, FIXTURES)
FILES = sorted(p for root in ROOTS for p in root.rglob("*.onnx"))


def _id(path: Path) -> str:
    return str(path.relative_to(path.parents[3]))


def _session(path: Path) -> ort.InferenceSession:
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def test_the_glob_sees_the_shipped_models():
    shipped = [p for p in FILES if MODELS_DIR in p.parents]
    assert len(shipped) >= 11, shipped  # 2 tokenizers x 2, 3 policies x 2, the sentence encoder
    assert {p.parent.name for p in shipped} >= {"tok-task", "tok-recon", "vla-task"}


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_every_onnx_file_says_what_it_is(path: Path):
    sess = _session(path)
    meta = sess.get_modelmeta().custom_metadata_map  # what plain ONNX Runtime shows
    missing = [k for k in ONNX_METADATA_KEYS if k not in meta]
    assert not missing, f"{path}: no {missing}; run `embodied stamp-metadata {path.parent}`"
    assert meta[META_ROLE] in ONNX_ROLES
    assert meta[META_FORMAT] == "1"
    assert len(meta[META_MODEL_ID]) == 8 and int(meta[META_MODEL_ID], 16) >= 0
    # the inputs and outputs named in the metadata are the graph's, in order, with its types
    for kind, args in (("inputs", sess.get_inputs()), ("outputs", sess.get_outputs())):
        listed = json.loads(meta[META_INPUTS if kind == "inputs" else META_OUTPUTS])
        assert [e["name"] for e in listed] == [a.name for a in args], kind
        for e, a in zip(listed, args, strict=True):
            assert ORT_TYPES[e["dtype"]] == a.type, (kind, e["name"])
            assert e["meaning"].strip(), (kind, e["name"])
            assert len(e["shape"]) == len(a.shape), (kind, e["name"], a.shape)
            for want, got in zip(e["shape"], a.shape, strict=True):  # static dims agree
                if isinstance(want, int) and isinstance(got, int):
                    assert want == got, (kind, e["name"], e["shape"], a.shape)
    # and it is exactly what the contract computes for the file (the stamp is up to date)
    expected = model_dir_metadata(path.parent, [path.name])[path.name]
    assert {k: meta.get(k) for k in expected} == expected


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_ids_and_pairings_are_consistent(path: Path):
    meta = read_metadata(path)
    role, mid, budget = meta[META_ROLE], meta[META_MODEL_ID], json.loads(meta[META_BUDGET])
    d = path.parent
    if role.startswith("tokenizer_"):
        from embodied.codecs.tokens import TokenCodec

        spec = TokenCodec(d).spec  # refuses an encoder that does not hash to its model id
        assert mid == spec.model_id_hex == f"{onnx_model_id(d / ENCODER_ONNX):08x}"
        assert meta[META_TOKENIZER_ID] == mid and meta[META_MODEL_NAME] == spec.name
        assert budget == [1, spec.k_max]
    elif role in ("policy", "task_belief"):
        spec = PolicySpec.load(d / POLICY_JSON)
        assert mid == f"{onnx_model_id(d / POLICY_ONNX['fp32']):08x}"  # fp16, belief: the same
        assert meta[META_MODEL_NAME] == spec.name
        assert meta[META_TOKENIZER_ID] == spec.tokenizer_model_id
        paired = d.parent / spec.tokenizer / TOKENIZER_JSON  # a tokenizer beside it: its id
        if paired.is_file():
            assert meta[META_TOKENIZER_ID] == TokenizerSpec.load(paired).model_id_hex
        if role == "policy":
            assert budget == [spec.budget_min, spec.budget_max]
            assert path.name in POLICY_ONNX.values()
        else:
            assert budget is None and path.name == BELIEF_ONNX
            assert json.loads(meta["tasks"]) == list(spec.tasks)
    else:
        assert role == "instruction_encoder"
        assert mid == f"{onnx_model_id(path):08x}" and budget is None
        assert meta[META_TOKENIZER_ID] == NO_TOKENIZER


@pytest.mark.parametrize("root", ROOTS, ids=lambda r: r.name)
def test_stamp_check_finds_nothing_stale(root: Path, capsys):
    assert stamp_main([str(root), "--check"]) == 0, capsys.readouterr().out


def test_stamping_keeps_model_bytes_and_ids_and_is_idempotent(tmp_path):
    from embodied.codecs.tokens import TokenCodec

    src = FIXTURES / "tok-tiny"
    d = tmp_path / "tok-tiny"
    shutil.copytree(src, d)
    enc = d / ENCODER_ONNX
    before = enc.read_bytes()
    ids = (onnx_model_id(enc), TokenCodec(d).model_id)
    # strip the metadata: the model bytes and the id stay; the stamp puts it back exactly
    enc.write_bytes(without_metadata(before))
    assert read_metadata(enc) == {} and onnx_model_id(enc) == ids[0]
    assert [p.name for p in stamp_model_dir(d, dry_run=True)] == [ENCODER_ONNX]
    assert enc.read_bytes() == without_metadata(before)  # a dry run writes nothing
    assert [p.name for p in stamp_model_dir(d)] == [ENCODER_ONNX]
    assert enc.read_bytes() == before
    assert stamp_model_dir(d) == []  # idempotent
    assert (onnx_model_id(enc), TokenCodec(d).model_id) == ids
    # other keys survive a stamp; a changed key changes the bytes, not the model or its id
    enc.write_bytes(with_metadata(before, {"note": "mine", META_ROLE: "policy"}))
    assert without_metadata(enc.read_bytes()) == without_metadata(before)
    assert stamp_model_dir(d) == [enc]
    assert read_metadata(enc)["note"] == "mine" and read_metadata(enc)[META_ROLE] != "policy"
    _session(enc)  # ONNX Runtime reads what was written


def test_metadata_rewrite_refusals(tmp_path):
    with pytest.raises(NotOnnx):
        without_metadata(b"\xff\xff\xff")
    with pytest.raises(TypeError):
        with_metadata(b"", {"k": 1})  # type: ignore[dict-item]
    assert with_metadata(b"", {"k": "v"}) != b"" and without_metadata(with_metadata(b"", {})) == b""
    d = tmp_path / "m"
    d.mkdir()
    (d / "mystery.onnx").write_bytes((FIXTURES / "tok-tiny" / ENCODER_ONNX).read_bytes())
    with pytest.raises(ModelFileError, match="no known role"):
        model_dir_metadata(d)
    assert stamp_main([str(d)]) == 2

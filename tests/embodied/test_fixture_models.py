"""Camera frame → packet → token ids → action chunk on the committed tiny models, without torch.

``tests/fixtures/models/{tok-tiny,vla-tiny}`` follow docs/models.md; ``GENERATE_EXPECTED=1``
rebuilds them with torch (``tests.fixtures.tiny_models``). Also the two identities: the
*model's* id, which the policy checks, and the *stream* id (model + entropy coder), which keys
the packet CRC.
"""

from __future__ import annotations

import numpy as np
import pytest

from embodied.codecs.tokens import TokenCodec
from embodied.modelfiles import (
    POLICY_JSON,
    TOKENIZER_FILES,
    ModelFileError,
    PolicySpec,
    TokenizerSpec,
    codes_to_ids,
    ids_to_codes,
)
from embodied.packet import CorruptPacket, ForeignModel, model_hash
from embodied.policy import ActionChunker, OnnxPolicy
from tests.fixtures.tiny_models import committed, make_frames


@pytest.fixture(scope="module")
def dirs():
    return committed()


@pytest.fixture(scope="module")
def codec(dirs):
    return TokenCodec(dirs[0])


def test_fixtures_are_tiny_and_consistent(dirs):
    tok_dir, pol_dir = dirs
    assert all((tok_dir / f).is_file() for f in TOKENIZER_FILES)
    total = sum(f.stat().st_size for d in dirs for f in d.iterdir())
    assert total < 200_000, f"fixtures grew to {total} bytes"
    tok, pol = TokenizerSpec.load(tok_dir), PolicySpec.load(pol_dir / POLICY_JSON)
    assert pol.tokenizer == tok.name and pol.tokenizer_model_id == tok.model_id_hex
    assert (pol.k_max, pol.vocab) == (tok.k_max, tok.vocab)
    pol.check_tokenizer(tok)


def test_frame_to_action_chunk_without_torch(dirs, codec):
    policy = OnnxPolicy(dirs[1], providers="cpu", tokenizer_model_id=codec.tokenizer_model_id)
    robot = ActionChunker(policy)
    frames = make_frames(3, seed=2, res=codec.spec.resolution)
    for i, frame in enumerate(frames):
        for k in (1, 4, codec.k_max):
            enc = codec.encode(frame, budget=k, frame_id=i)
            dec = codec.decode(enc.packet)
            np.testing.assert_array_equal(dec.tokens, enc.tokens)
            chunk = policy.infer(
                {"token_ids": dec.tokens, "budget": k, "instruction": "open the drawer",
                 "proprio": np.zeros(4, np.float32)}
            )  # fmt: skip
            assert chunk.shape == (policy.spec.chunk, 4) and np.all(np.abs(chunk) <= 1)
        robot.submit(chunk, obs_step=robot.step)
        assert robot.next_action().shape == (4,)


def test_token_ids_pack_fsq_codes_mixed_radix(codec):
    levels = codec.spec.levels
    codes = np.array([[0, 0, 0, 0], [7, 4, 4, 4], [1, 2, 3, 4]])
    ids = codes_to_ids(codes, levels)
    np.testing.assert_array_equal(ids, [0, 999, 1 * 125 + 2 * 25 + 3 * 5 + 4])
    np.testing.assert_array_equal(ids_to_codes(ids, levels), codes)
    with pytest.raises(ValueError, match=r"0\.\.999"):
        ids_to_codes([1000], levels)
    _, ids = codec.tokenize(make_frames(2, res=codec.spec.resolution))
    np.testing.assert_array_equal(codec.codes_to_ids(codec.ids_to_codes(ids)), ids)


def test_stream_id_covers_the_coder_and_the_model_id_does_not(dirs, codec):
    other = TokenCodec(dirs[0], coder="constriction")
    # the model's id: one tokenizer, whatever the coder, what policy.json records
    assert other.tokenizer_model_id == codec.tokenizer_model_id == codec.spec.model_id_hex
    OnnxPolicy(dirs[1], providers="cpu", tokenizer_model_id=other.tokenizer_model_id)
    # the stream id: differs by coder, so a receiver on the other coder refuses the packet
    assert codec.model_id == model_hash(codec.identity()) != other.model_id
    assert codec.model_id != codec.spec.model_id
    frame = make_frames(1, res=codec.spec.resolution)[0]
    packet = codec.encode(frame, budget=4).packet
    with pytest.raises(CorruptPacket):
        other.decode(packet)
    knowing = TokenCodec(dirs[0], coder="constriction", known_models=[codec.model_id])
    with pytest.raises(ForeignModel):
        knowing.decode(packet)
    with pytest.raises(ModelFileError, match="model_id"):
        OnnxPolicy(dirs[1], providers="cpu", tokenizer_model_id=f"{codec.model_id:08x}")

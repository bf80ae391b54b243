"""One interface for everything that crosses the link: learned tokens and pixel codecs.

A codec turns one camera frame into one packet (``embodied.packet``) and one
packet back into what the policy consumes: token ids for the learned codec,
an image at the camera's resolution for the pixel baselines. The interface is
deliberately small (openpi's ``infer``, CompressAI's ``compress`` /
``decompress``)::

    codec = make_codec("jpeg", frame_shape=(64, 64))
    enc = codec.encode(frame, target_bytes=200, frame_id=i, stamp_ms=t)
    link.send(enc.packet)                       # enc.bits == 8 * len(enc.packet)
    dec = codec.decode(packet)                  # raises PacketError subclasses only
    policy(dec.image if dec.image is not None else dec.tokens)

Rate knobs, both optional, at most one per call:

* ``budget``: the codec's own discrete knob, written to the packet's budget
  byte: the token count k for the learned codec, a ladder rung index for the
  pixel codecs (``codec.budgets()`` lists the valid values, ascending rate).
* ``target_bytes``: a size for the whole packet, header included. The codec
  picks the setting that fits (the best one, for ladder codecs); when nothing
  fits it sends its smallest packet and says so (``target_met=False``).

The same object serves both ends; a stateful codec (H.264 inter) keeps its
encoder and decoder state apart and ``reset()`` clears both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from embodied.packet import (
    BitCount,
    CodecId,
    CorruptPacket,
    PacketError,
    PacketHeader,
    decode_packet,
    encode_packet,
    model_hash,
)

CodecKind = Literal["image", "tokens"]
Setting = Mapping[str, int | float | str]

MIN_SIDE, MAX_SIDE = 16, 512


class CodecUnavailable(RuntimeError):
    """The codec is registered but cannot be built here (e.g. its model files are absent).

    Raise this (or a subclass) from a codec's constructor for a missing
    model or library, so that registry-wide tests and benchmarks skip the
    codec with the reason instead of failing.
    """


class MissingReference(PacketError):
    """An inter-coded packet whose reference frames this decoder never received."""


class UndecodablePayload(CorruptPacket):
    """The packet checked out but its payload does not decode (a sender bug, or a CRC collision)."""


@dataclass(frozen=True)
class EncodedFrame:
    """One encoded frame and its exact cost on the wire.

    ``format_overhead_bytes`` is the part of the payload that is the inner
    format's own fixed headers (JPEG markers and tables, WebP RIFF/VP8 headers,
    H.264 parameter sets), reported so that a baseline's header cost is seen,
    not hidden.
    """

    packet: bytes
    header: PacketHeader
    payload_bytes: int
    setting: Setting = field(default_factory=dict)
    target_bytes: int | None = None
    target_met: bool = True
    format_overhead_bytes: int = 0

    @property
    def header_bytes(self) -> int:
        """Everything in the packet that is not payload (our header and CRC)."""
        return len(self.packet) - self.payload_bytes

    @property
    def bits(self) -> int:
        """What the link carries: ``8 * len(packet)``, headers included."""
        return 8 * len(self.packet)

    @property
    def bit_count(self) -> BitCount:
        return BitCount(8 * self.header_bytes, 8 * self.payload_bytes)


@dataclass(frozen=True)
class DecodedFrame:
    """What the receiver hands on: an image (pixel codecs) or token ids (learned codec).

    ``image``: "h w 3" uint8 RGB at the codec's ``frame_shape``.
    ``tokens``: "k" integer token ids (the first k of K_max).
    ``intact``: False while a stateful decoder is known to be missing a
    reference (after a lost packet, until the next keyframe or a completed
    intra refresh); the image is then a concealed approximation.
    """

    header: PacketHeader
    image: np.ndarray | None = None
    tokens: np.ndarray | None = None
    setting: Setting = field(default_factory=dict)
    intact: bool = True


@runtime_checkable
class Codec(Protocol):
    """What every codec registered in ``embodied.codecs`` provides."""

    name: ClassVar[str]
    kind: ClassVar[CodecKind]
    codec_id: ClassVar[CodecId]
    stateful: ClassVar[bool]  # packets depend on earlier ones (decode in order; reset() between)

    @property
    def model_id(self) -> int:
        """32-bit stream identity both ends agree on; it seeds the packet CRC."""
        ...

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(height, width) of the frames this codec takes and gives back."""
        ...

    def budgets(self) -> Sequence[int]:
        """Valid ``budget`` values, in ascending rate."""
        ...

    def encode(
        self,
        frame: np.ndarray,
        *,
        budget: int | None = None,
        target_bytes: int | None = None,
        frame_id: int = 0,
        stamp_ms: int = 0,
    ) -> EncodedFrame: ...

    def decode(self, packet: bytes) -> DecodedFrame: ...

    def reset(self) -> None: ...


def check_frame(frame: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
    """Refuse anything but an "h w 3" uint8 frame of the configured shape."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError(
            f"frame must be a uint8 numpy array, got {getattr(frame, 'dtype', frame)!r}"
        )
    if frame.shape != (*frame_shape, 3):
        raise ValueError(f"frame shape {frame.shape} != configured {(*frame_shape, 3)}")
    return np.ascontiguousarray(frame)


def check_frame_shape(frame_shape: Sequence[int]) -> tuple[int, int]:
    shape = tuple(int(s) for s in frame_shape)
    if len(shape) != 2 or not all(MIN_SIDE <= s <= MAX_SIDE for s in shape):
        raise ValueError(
            f"frame_shape={tuple(frame_shape)!r}: need (height, width) in {MIN_SIDE}..{MAX_SIDE}"
        )
    return shape  # type: ignore[return-value]


class PacketCodec(ABC):
    """Shared plumbing: stream identity, packet framing, strict unpacking.

    A codec subclasses this, sets ``name``, ``kind`` and ``codec_id``, and
    implements ``encode`` / ``decode`` with ``_pack`` and ``_unpack``. The
    learned token codec can use it too; it should put its weights' hash in
    ``identity()`` so that a receiver running other weights refuses its
    packets (``ForeignModel`` / ``CorruptPacket``) instead of decoding garbage.
    """

    name: ClassVar[str]
    kind: ClassVar[CodecKind]
    codec_id: ClassVar[CodecId]
    stateful: ClassVar[bool] = False

    def __init__(self, frame_shape: Sequence[int] = (64, 64), known_models: Iterable[int] = ()):
        self._frame_shape = check_frame_shape(frame_shape)
        self.known_models = tuple(known_models)

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self._frame_shape

    def identity(self) -> str:
        """What both ends must share to decode; hashed into ``model_id``."""
        h, w = self._frame_shape
        return f"embodied.codecs/{self.name}/v1/{h}x{w}"

    @property
    def model_id(self) -> int:
        return model_hash(self.identity())

    def reset(self) -> None:  # noqa: B027 (stateless codecs need nothing)
        """Clear encoder and decoder state; stateless by default."""

    @abstractmethod
    def budgets(self) -> Sequence[int]: ...

    @abstractmethod
    def encode(
        self,
        frame: np.ndarray,
        *,
        budget: int | None = None,
        target_bytes: int | None = None,
        frame_id: int = 0,
        stamp_ms: int = 0,
    ) -> EncodedFrame: ...

    @abstractmethod
    def decode(self, packet: bytes) -> DecodedFrame: ...

    def _check_knobs(self, budget: int | None, target_bytes: int | None) -> None:
        if budget is not None and target_bytes is not None:
            raise ValueError("give budget or target_bytes, not both")
        if budget is not None and budget not in self.budgets():
            b = self.budgets()
            raise ValueError(f"{self.name}: budget={budget!r} not in {b[0]}..{b[-1]}")
        if target_bytes is not None and (not isinstance(target_bytes, int) or target_bytes < 1):
            raise ValueError(f"{self.name}: target_bytes={target_bytes!r} must be a positive int")

    def _pack(
        self,
        payload: bytes,
        *,
        budget: int,
        frame_id: int,
        stamp_ms: int,
        keyframe: bool = True,
    ) -> tuple[bytes, PacketHeader]:
        header = PacketHeader.for_frame(
            self.codec_id, frame_id=frame_id, stamp_ms=stamp_ms, budget=budget, keyframe=keyframe
        )
        return encode_packet(header, payload, self.model_id), header

    def _unpack(self, packet: bytes) -> tuple[PacketHeader, bytes]:
        header, payload = decode_packet(packet, self.model_id, known_models=self.known_models)
        if header.codec != self.codec_id:
            # Only reachable when two codecs share a model id; still never decode it.
            raise CorruptPacket(
                f"packet is {header.codec.name}, this decoder is {self.codec_id.name}"
            )
        return header, payload

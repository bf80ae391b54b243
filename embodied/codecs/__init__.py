"""Codecs for everything that crosses the link, registered by name.

Entries are string entry points (``"module:Class"``), as gymnasium registers
environments, so importing this package imports neither PyAV nor a model:
``make_codec`` imports a codec's module when it is first asked for. One
``CodecSpec`` per entry holds every fact about it (no parallel tables that
can drift apart); a name is refused twice, and an unknown name is answered
with the valid ones and a "did you mean".

Registered here: ``raw``, ``jpeg``, ``webp``, ``h264-intra``, ``h264`` and ``tokens``
(the learned codec, ``embodied.codecs.tokens:TokenCodec``). The table is an
:class:`embodied.registry.Registry` (``CODECS``). Usage::

    from embodied.codecs import make_codec, codec_names
    codec = make_codec("webp", frame_shape=(64, 64))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from embodied.codecs.base import (
    Codec,
    CodecKind,
    CodecUnavailable,
    DecodedFrame,
    EncodedFrame,
    MissingReference,
    PacketCodec,
    UndecodablePayload,
)
from embodied.packet import CodecId
from embodied.registry import DuplicateName, Registry, UnknownName, load_entry

__all__ = [
    "CODECS",
    "Codec",
    "CodecSpec",
    "CodecUnavailable",
    "DecodedFrame",
    "EncodedFrame",
    "MissingReference",
    "PacketCodec",
    "UndecodablePayload",
    "UnknownCodecName",
    "codec_names",
    "codec_spec",
    "make_codec",
    "register_codec",
]


#: Kept as the codec registry's name for "no such codec" (one class for every registry).
UnknownCodecName = UnknownName


@dataclass(frozen=True)
class CodecSpec:
    """One registry entry: everything known about a codec without importing it."""

    name: str
    entry: str | Callable[..., Codec]  # "package.module:Factory" or the factory itself
    codec_id: CodecId
    kind: CodecKind
    help: str = ""

    def load(self) -> Callable[..., Codec]:
        return self.entry if callable(self.entry) else load_entry(self.entry)


CODECS: Registry[CodecSpec] = Registry("codec")


def register_codec(
    name: str,
    entry: str | Callable[..., Codec],
    *,
    codec_id: CodecId | int,
    kind: CodecKind,
    help: str = "",
) -> CodecSpec:
    """Add a codec; refuses a name twice. Variants of one family may share a codec id
    (their ``model_id`` tells their packets apart)."""
    if name in CODECS:
        raise DuplicateName(f"codec {name!r} is already registered ({CODECS.get(name).entry!r})")
    if kind not in ("image", "tokens"):
        raise ValueError(f"codec {name!r}: kind={kind!r} must be 'image' or 'tokens'")
    if isinstance(entry, str) and ":" not in entry:
        raise ValueError(f"codec {name!r}: entry {entry!r} must read 'package.module:Factory'")
    return CODECS.add(name, CodecSpec(name, entry, CodecId(codec_id), kind, help))


def codec_names() -> list[str]:
    return CODECS.names()


def codec_spec(name: str) -> CodecSpec:
    return CODECS.get(name)


def make_codec(name: str, **kwargs: Any) -> Codec:
    """Build a codec by name; keyword arguments go to its constructor (e.g. ``frame_shape``)."""
    return codec_spec(name).load()(**kwargs)


register_codec(
    "raw",
    "embodied.codecs.raw:RawCodec",
    codec_id=CodecId.RAW,
    kind="image",
    help="raw RGB pixels, ladder of downscales (64x64 ... 4x4)",
)
register_codec(
    "jpeg",
    "embodied.codecs.jpeg:JpegCodec",
    codec_id=CodecId.JPEG,
    kind="image",
    help="OpenCV JPEG, (quality, downscale) ladder, quality searched to a target size",
)
register_codec(
    "webp",
    "embodied.codecs.webp:WebpCodec",
    codec_id=CodecId.WEBP,
    kind="image",
    help="OpenCV WebP (lossy), (quality, downscale) ladder, quality searched to a target size",
)
register_codec(
    "h264-intra",
    "embodied.codecs.h264:H264IntraCodec",
    codec_id=CodecId.H264_INTRA,
    kind="image",
    help="libx264 zerolatency, every frame an IDR, (QP, downscale) ladder",
)
register_codec(
    "h264",
    "embodied.codecs.h264:H264Codec",
    codec_id=CodecId.H264,
    kind="image",
    help="libx264 zerolatency inter frames, CBR + VBV, intra refresh; stateful",
)
register_codec(
    "tokens",
    "embodied.codecs.tokens:TokenCodec",
    codec_id=CodecId.TOKENS,
    kind="tokens",
    help="learned 1-D visual tokens (FSQ + range coding), budget = token count k",
)
register_codec(
    "tokens-inter",
    "embodied.interframe:make_inter_codec",
    codec_id=CodecId.TOKENS,
    kind="tokens",
    help="learned tokens coded across frames (prior given the acknowledged reference), "
    "keyframes on start/loss/request/interval, compact headers; stateful",
)

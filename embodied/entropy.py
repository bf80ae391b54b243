"""Byte-exact arithmetic coding of symbol sequences under factorized categorical models.

Why not a stock range or ANS coder: constriction's coders (and most others)
emit 32-bit words and flush a whole word at the end, so a frame of 1-16 FSQ
tokens (a few dozen bits) would pay up to 31 bits of padding, a third of a
96-bit budget. Here the message is coded *exactly*:

* every symbol position ``i`` has its own integer frequency table with total
  ``2**16`` and every valid symbol's frequency ``>= 1``;
* the encoder narrows the interval ``[low, low + width) / 2**(16 n)`` with
  Python big integers, no renormalisation and no rounding, so the final width
  is exactly ``prod(f_i) / 2**(16 n)``;
* it emits the **shortest** byte string ``B`` (``m`` bytes) whose value
  ``B / 256**m`` lies in that interval. An interval of width ``2**-I`` always
  holds a multiple of ``2**-8m`` once ``8m >= I``, so ``m <= ceil(I / 8)``,
  where ``I = -sum(log2(f_i / 2**16))`` is the message's information content
  under the integer tables: at most 7 bits of padding per frame;
* the decoder knows the symbol count from the packet header (the budget) and
  the byte count from the packet's length field, so no terminator is sent.

Strictness: every symbol sequence has exactly one encoding (the shortest, and
among those the smallest value), and the decoder refuses any payload that is
not that encoding (``EntropyDecodeError``, a ``CorruptPacket``). Garbage never
crashes it; the packet CRC rejects garbage earlier anyway.

Cost: a few big-integer operations per symbol on numbers of ``16 n`` bits;
for ``n = 256`` symbols (64 FSQ tokens of 4 dimensions) that is 4096-bit
arithmetic, a few hundred microseconds in CPython.

``ConstrictionCoder`` wraps ``constriction``'s queue range coder behind the
same interface, only so that benchmarks can show what word granularity costs.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol

import numpy as np

from embodied.packet import CorruptPacket
from embodied.registry import Registry

PRECISION = 16
TOTAL = 1 << PRECISION

__all__ = [
    "CODERS",
    "PRECISION",
    "TOTAL",
    "ArithmeticCoder",
    "CategoricalTables",
    "ConstrictionCoder",
    "EntropyCoder",
    "EntropyDecodeError",
    "get_coder",
    "quantize_probabilities",
]


class EntropyDecodeError(CorruptPacket):
    """A payload that is not the canonical encoding of any symbol sequence."""


# ----------------------------------------------------------------------------- tables


def quantize_probabilities(
    probs: Sequence[float] | np.ndarray, precision: int = PRECISION
) -> list[int]:
    """Integer frequencies (each >= 1, sum exactly ``2**precision``) close to ``probs``.

    Every symbol keeps a frequency of at least 1 so that any symbol, however
    unlikely under the prior, stays codable (at most ``precision`` bits);
    the remaining mass is shared in proportion to ``probs`` by the largest
    remainder method, so the sum is exact without iterative fixing. A row of
    zeros becomes uniform (an untrained position costs log2(L) bits).
    """
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    n = p.size
    total = 1 << precision
    if n == 0:
        raise ValueError("cannot quantize an empty probability table")
    if n > total:
        raise ValueError(f"{n} symbols do not fit a table of total {total}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError(f"probabilities must be finite and >= 0, got {p!r}")
    s = float(p.sum())
    p = np.full(n, 1.0 / n) if s <= 0 else p / s
    spare = total - n
    raw = p * spare
    freq = np.floor(raw).astype(np.int64)
    short = spare - int(freq.sum())
    if short > 0:
        # Largest fractional parts first; ties broken by index for determinism.
        order = np.lexsort((np.arange(n), -(raw - freq)))
        freq[order[:short]] += 1
    freq += 1
    assert int(freq.sum()) == total and int(freq.min()) >= 1
    return [int(f) for f in freq]


@dataclass(frozen=True)
class CategoricalTables:
    """One integer frequency table per symbol position (a factorized model).

    A message of ``n`` symbols is coded with the first ``n`` tables, so one
    set of tables serves every prefix length (every token budget). Tables
    may have different alphabet sizes (FSQ dimensions with different level
    counts). Cumulative tables are kept as Python int lists: the coder's
    inner loop indexes them without numpy scalar conversions.
    """

    freqs: tuple[tuple[int, ...], ...]
    precision: int = PRECISION
    cums: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        total = 1 << self.precision
        freqs = tuple(tuple(int(f) for f in row) for row in self.freqs)
        cums = []
        for i, row in enumerate(freqs):
            if not row or min(row) < 1 or sum(row) != total:
                raise ValueError(
                    f"table {i}: need frequencies >= 1 summing to {total}, got "
                    f"{len(row)} entries summing to {sum(row)}"
                )
            c = [0]
            for f in row:
                c.append(c[-1] + f)
            cums.append(tuple(c))
        object.__setattr__(self, "freqs", freqs)
        object.__setattr__(self, "cums", tuple(cums))

    @classmethod
    def from_probabilities(
        cls,
        probs: np.ndarray | Sequence[Sequence[float]],
        sizes: Sequence[int] | None = None,
        precision: int = PRECISION,
    ) -> CategoricalTables:
        """Quantize rows of float probabilities; ``sizes[i]`` valid symbols in row ``i``.

        ``sizes`` lets a padded ``[n, L_max]`` array (the tokenizer prior) hold
        rows with fewer symbols; entries beyond ``sizes[i]`` are ignored.
        """
        rows = [np.asarray(r, dtype=np.float64) for r in probs]
        if sizes is None:
            sizes = [len(r) for r in rows]
        if len(sizes) != len(rows):
            raise ValueError(f"{len(sizes)} sizes for {len(rows)} rows")
        return cls(
            tuple(
                tuple(quantize_probabilities(r[: int(k)], precision))
                for r, k in zip(rows, sizes, strict=True)
            ),
            precision,
        )

    @classmethod
    def uniform(cls, sizes: Sequence[int], precision: int = PRECISION) -> CategoricalTables:
        return cls.from_probabilities([[1.0] * int(k) for k in sizes], sizes, precision)

    def __len__(self) -> int:
        return len(self.freqs)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(r) for r in self.freqs)

    def information_bits(self, symbols: Sequence[int]) -> float:
        """``-sum(log2 p_i)`` under the integer tables: the exact coder's length in bits, ±8."""
        self.check(symbols)
        return sum(self.precision - math.log2(self.freqs[i][s]) for i, s in enumerate(symbols))

    @cached_property
    def padded_probabilities(self) -> np.ndarray:
        """``[n, max size]`` float64 probabilities, zero-padded (for other coders)."""
        width = max(self.sizes) if self.freqs else 1
        out = np.zeros((len(self.freqs), width))
        for i, row in enumerate(self.freqs):
            out[i, : len(row)] = np.asarray(row, dtype=np.float64) / (1 << self.precision)
        return out

    def check(self, symbols: Sequence[int]) -> None:
        """Refuse sequences longer than the tables or symbols outside a table's alphabet."""
        if len(symbols) > len(self.freqs):
            raise ValueError(f"{len(symbols)} symbols but only {len(self.freqs)} tables")
        for i, s in enumerate(symbols):
            if not 0 <= s < len(self.freqs[i]):
                raise ValueError(
                    f"symbol {s!r} at position {i} outside 0..{len(self.freqs[i]) - 1}"
                )


# ----------------------------------------------------------------------------- coders


class EntropyCoder(Protocol):
    """Symbols ⇄ bytes under ``CategoricalTables``; the decoder is told the count."""

    @property
    def name(self) -> str: ...

    def encode(self, symbols: Sequence[int], tables: CategoricalTables) -> bytes: ...

    def decode(self, data: bytes, n: int, tables: CategoricalTables) -> list[int]: ...


def _shortest_bytes(low: int, width: int, bits: int) -> bytes:
    """Shortest (then smallest) byte string whose value lies in [low, low + width) / 2**bits.

    Multiples of ``2**s`` in the interval exist exactly for ``s <= s_max``,
    the highest bit where ``low - 1`` and ``low + width - 1`` differ (for
    ``low > 0``); zero is a multiple of everything. With ``m`` bytes the
    grid is ``2**(bits - 8m)``, so ``m = ceil((bits - s_max) / 8)`` and the
    value is the smallest grid point ``>= low``.
    """
    if low == 0:
        return b""
    s_max = ((low - 1) ^ (low + width - 1)).bit_length() - 1
    m = -(-(bits - s_max) // 8)
    s = bits - 8 * m
    # s < 0 only when bits is not a multiple of 8: the grid is finer than the integers.
    value = ((low - 1) >> s) + 1 if s >= 0 else low << -s
    return value.to_bytes(m, "big")


def _constriction_stream() -> Any:
    """``constriction.stream`` (a native module without type information), imported lazily."""
    import constriction

    return constriction.stream  # pyright: ignore[reportAttributeAccessIssue]


@dataclass(frozen=True)
class ArithmeticCoder:
    """Exact big-integer arithmetic coder (see the module docstring)."""

    name: str = "arithmetic"

    def encode(self, symbols: Sequence[int], tables: CategoricalTables) -> bytes:
        symbols = [int(s) for s in symbols]
        tables.check(symbols)
        prec = tables.precision
        low, width = 0, 1
        for s, cum in zip(symbols, tables.cums, strict=False):
            c = cum[s]
            low = (low << prec) + c * width
            width *= cum[s + 1] - c
        return _shortest_bytes(low, width, prec * len(symbols))

    def decode(self, data: bytes, n: int, tables: CategoricalTables) -> list[int]:
        """The ``n`` symbols coded in ``data``; ``EntropyDecodeError`` if it is not canonical.

        Invariant: ``R = X - low * 2**S`` with ``X`` the payload's value and
        ``S`` the bits still to come, and ``0 <= R < width * 2**S``; each step
        picks the symbol whose sub-interval holds ``X``, so ``q`` always
        falls in ``[0, 2**precision)`` and a lookup always succeeds.
        """
        if n < 0 or n > len(tables):
            raise ValueError(f"n={n} outside 0..{len(tables)} (number of tables)")
        prec = tables.precision
        bits = prec * n
        data = bytes(data)
        if 8 * len(data) > bits + 7:
            # Longer than any canonical encoding (m <= ceil(bits / 8)).
            raise EntropyDecodeError(f"{len(data)} payload bytes for {n} symbols of {prec} bits")
        rest = bits - 8 * len(data)
        x = int.from_bytes(data, "big")
        if rest >= 0:
            x <<= rest
        else:  # only when bits is not a multiple of 8: the tail must be zero padding
            if x & ((1 << -rest) - 1):
                raise EntropyDecodeError("non-zero bits past the end of the message")
            x >>= -rest
        r, width = x, 1
        out = []
        shift = bits
        for i in range(n):
            cum = tables.cums[i]
            shift -= prec
            q = (r >> shift) // width
            s = bisect_right(cum, q) - 1
            c = cum[s]
            r -= (c * width) << shift
            width *= cum[s + 1] - c
            out.append(s)
        if _shortest_bytes(x - r, width, bits) != data:
            raise EntropyDecodeError("payload is not the canonical encoding of its symbols")
        return out


@dataclass(frozen=True)
class ConstrictionCoder:
    """constriction's queue range coder (32-bit words), for size comparisons only.

    Its models take float probabilities and requantize them to 24 bits
    (``perfect=False`` gives padded zero entries a minimal probability), so
    its sizes differ slightly from the integer tables' information content
    besides the word padding.
    """

    name: str = "constriction"

    def encode(self, symbols: Sequence[int], tables: CategoricalTables) -> bytes:
        stream = _constriction_stream()
        symbols = [int(s) for s in symbols]
        tables.check(symbols)
        if not symbols:
            return b""
        enc = stream.queue.RangeEncoder()
        probs = _probability_matrix(tables)[: len(symbols)]
        model = stream.model.Categorical(perfect=False)
        enc.encode(np.asarray(symbols, dtype=np.int32), model, probs)
        return enc.get_compressed().astype("<u4").tobytes()

    def decode(self, data: bytes, n: int, tables: CategoricalTables) -> list[int]:
        stream = _constriction_stream()
        if n < 0 or n > len(tables):
            raise ValueError(f"n={n} outside 0..{len(tables)} (number of tables)")
        if n == 0:
            if data:
                raise EntropyDecodeError("payload bytes for zero symbols")
            return []
        if len(data) % 4:
            raise EntropyDecodeError(f"{len(data)} bytes is not a whole number of 32-bit words")
        words = np.frombuffer(bytes(data), dtype="<u4").astype(np.uint32)
        model = stream.model.Categorical(perfect=False)
        try:
            dec = stream.queue.RangeDecoder(words)
            out = dec.decode(model, _probability_matrix(tables)[:n])
        except Exception as err:  # constriction raises plain ValueError/RuntimeError
            raise EntropyDecodeError(f"range decoder refused the payload: {err}") from err
        sizes = tables.sizes
        syms = [int(s) for s in out]
        if any(s >= sizes[i] for i, s in enumerate(syms)):
            raise EntropyDecodeError("decoded a padded (invalid) symbol")
        return syms


def _probability_matrix(tables: CategoricalTables) -> np.ndarray:
    probs = tables.padded_probabilities
    if probs.shape[-1] < 2:
        # constriction's Categorical refuses a one-category distribution ("not normalizable");
        # a zero-probability second category leaves the code unchanged (it is never coded)
        probs = np.concatenate([probs, np.zeros((*probs.shape[:-1], 1))], axis=-1)
    return probs


CoderName = Literal["arithmetic", "constriction"]


#: coder name → class; both ends of a stream must use the same one
CODERS: Registry[type[EntropyCoder]] = Registry("entropy coder")
CODERS.add("arithmetic", ArithmeticCoder)
CODERS.add("constriction", ConstrictionCoder)


def get_coder(name: CoderName | str = "arithmetic") -> EntropyCoder:
    """The coder called ``name``: "arithmetic" (exact, default) or "constriction"."""
    return CODERS.get(name)()

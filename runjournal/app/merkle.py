"""Merkle trees in the style of RFC 9162 (Certificate Transparency 2.0), section 2.1.

Pure functions over bytes, with SHA-256 as the hash:

- ``leaf_hash(d) = SHA-256(0x00 || d)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``;
- ``MTH({}) = SHA-256("")``; ``MTH(D[n])`` splits at ``k``, the largest power of
  two smaller than ``n``: ``node_hash(MTH(D[0:k]), MTH(D[k:n]))``;
- inclusion proofs (``PATH``, section 2.1.3) and consistency proofs (``PROOF``,
  section 2.1.4), and the RFC's algorithms to verify them.

Nothing here knows about runjournal's log: an auditor can copy ``verify_inclusion``
and ``verify_consistency`` (or port them) and check a proof with nothing else.
``RootBuilder`` computes a root from a stream of leaf hashes in O(n) hashing
and O(log n) memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an inner node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n`` > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


class RootBuilder:
    """The tree head of a stream of leaf hashes, one leaf at a time.

    Keeps one hash per set bit of the size (the roots of the complete subtrees
    so far, largest first), so memory is O(log n) however long the stream.
    """

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self.size = 0

    def add(self, leaf: bytes) -> None:
        """Append the hash of the next leaf (``leaf_hash(data)``)."""
        h = leaf
        size = self.size
        while size & 1:  # merge the complete subtrees this leaf completes
            h = node_hash(self._stack.pop(), h)
            size >>= 1
        self._stack.append(h)
        self.size += 1

    def root(self) -> bytes:
        """``MTH`` of the leaves added so far."""
        if not self._stack:
            return EMPTY_ROOT
        h = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            h = node_hash(left, h)
        return h


def root(leaves: Iterable[bytes]) -> bytes:
    """``MTH`` of a sequence of leaf hashes."""
    builder = RootBuilder()
    for leaf in leaves:
        builder.add(leaf)
    return builder.root()


def _mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    return root(leaves[i] for i in range(lo, hi))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """``PATH(index, D[n])`` over the leaf hashes ``leaves`` (RFC 9162, 2.1.3.1)."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} outside a tree of {n} leaves")
    path: list[bytes] = []
    lo, hi, m = 0, n, index
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            path.append(_mth(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_mth(leaves, lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()  # PATH lists the sibling nearest the leaf first
    return path


def consistency_proof(first_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """``PROOF(m, D[n])`` that the first ``first_size`` leaves are a prefix (RFC 9162, 2.1.4.1)."""
    n = len(leaves)
    if not 0 < first_size <= n:
        raise ValueError(f"no consistency proof from size {first_size} to size {n}")
    proof: list[bytes] = []
    lo, hi, m, complete = 0, n, first_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(_mth(leaves, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_mth(leaves, lo, lo + k))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        proof.append(_mth(leaves, lo, hi))
    proof.reverse()
    return proof


def verify_inclusion(leaf: bytes, index: int, tree_size: int, path: Sequence[bytes], root_hash: bytes) -> bool:
    """True when ``path`` proves that the leaf hash ``leaf`` sits at ``index`` of the tree ``root_hash``.

    RFC 9162, section 2.1.3.2, step by step. ``leaf`` is ``leaf_hash(leaf data)``.
    """
    if not 0 <= index < tree_size:
        return False
    fn, sn, r = index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root_hash


def verify_consistency(
    first_size: int, second_size: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when ``proof`` shows the tree ``first_root`` is a prefix of the tree ``second_root``.

    RFC 9162, section 2.1.4.2; equal sizes need an empty proof and equal roots,
    and a first tree of size 0 (``EMPTY_ROOT``) is a prefix of every tree.
    """
    if not 0 <= first_size <= second_size:
        return False
    if first_size == 0:
        return first_root == EMPTY_ROOT and not proof
    if first_size == second_size:
        return first_root == second_root and not proof
    path = list(proof)
    if not path:
        return False
    if first_size & (first_size - 1) == 0:  # an exact power of two: the first root is a node of the proof
        path.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root


__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "RootBuilder",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

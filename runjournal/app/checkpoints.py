"""Checkpoints: signed Merkle tree heads over the whole log, and proofs against them.

The log is a Merkle tree in the style of RFC 9162 (see ``merkle``): leaf ``i`` is
the ``i``-th stored event in log order, every event of every run (broken runs
too). Its leaf data is the RFC 8785 JSON of what was stored::

    {"chain": <the stored chain value>, "run_id": <run id>, "version": <version>}

and, for an event whose stored bytes cannot be read (no chain to take),
``{"chain": null, "run_id": ..., "stored_sha256": <sha256 of the stored bytes>,
"version": ...}``. The chain value commits to the event's whole content and to
every earlier event of its run, so the tree commits to the whole log.

A checkpoint (a tree head) holds the tree size, the root hash and the time,
optionally signed with Ed25519. Held outside the store, it lets ``verify``
prove with a consistency proof that today's log extends it: an event before it
rewritten (even with every later chain recomputed), removed or moved changes
the tree. An inclusion proof shows one event is in the tree; it is checked
offline, with nothing but the proof (and the checkpoint).

The stored chain values are taken as stored: ``verify`` recomputes them; the
two checks together cover content and order.

Over 400 lines for now: tree heads and signing, the two kinds of proof and the key
files are one concept for an auditor; they part into modules in the reshaping
step that splits the journal.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..domain import InvalidInput, RunNotFound
from . import merkle
from .decoding import plain_state
from .journal import Journal

CHECKPOINT_FORMAT = "runjournal-checkpoint/1"
PROOF_FORMAT = "runjournal-inclusion-proof/1"
SIGNATURE_ALGORITHM = "ed25519"
HEAD_FIELDS = ("format", "tree_size", "root_hash", "timestamp")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX128 = re.compile(r"[0-9a-f]{128}")
_PLAIN = re.compile(r"[ !#-\[\]-~]*")  # printable ASCII but " and \: JSON strings with no escapes
_SAFE_INTEGER = 2**53 - 1


# -- leaves -------------------------------------------------------------------------------


def leaf_data(leaf: Mapping[str, Any]) -> bytes:
    """The bytes a leaf hashes: the RFC 8785 JSON of its record."""
    run_id, version, stored_chain = leaf.get("run_id"), leaf.get("version"), leaf.get("chain")
    if (len(leaf) == 3 and type(version) is int and -_SAFE_INTEGER <= version <= _SAFE_INTEGER
            and isinstance(run_id, str) and isinstance(stored_chain, str)
            and _PLAIN.fullmatch(run_id) and _PLAIN.fullmatch(stored_chain)):
        # the usual leaf, written out: sorted keys, no escapes needed (what rfc8785 gives, tested)
        return f'{{"chain":"{stored_chain}","run_id":"{run_id}","version":{version}}}'.encode()
    return rfc8785.dumps(dict(leaf))


def leaf_hash(leaf: Mapping[str, Any]) -> bytes:
    """``SHA-256(0x00 || leaf_data(leaf))``."""
    return merkle.leaf_hash(leaf_data(leaf))


def stored_leaf(mapper: Any, run_id: str, version: int, state: bytes) -> dict[str, Any]:
    """The leaf record of one stored event, from its stored bytes (nothing is resolved or upcast)."""
    try:
        plain = plain_state(mapper, state)
        try:
            fields = orjson.loads(plain)
        except orjson.JSONDecodeError:  # integers beyond 64 bits, which older stores may hold
            fields = json.loads(plain)
        stored_chain = fields.get("chain")
    except Exception:  # noqa: BLE001 - an unreadable event is still a leaf: of its stored bytes
        stored_chain = None
    if isinstance(stored_chain, str):
        return {"chain": stored_chain, "run_id": run_id, "version": version}
    return {"chain": None, "run_id": run_id, "version": version,
            "stored_sha256": hashlib.sha256(bytes(state)).hexdigest()}


def iter_leaves(journal: Journal, *, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """The leaf record of every stored event in log order (the first ``limit`` only, if given), page by page."""
    mapper = journal._store.mapper
    count = 0
    for page in journal.raw_pages(0):
        for _position, run_id, version, _topic, state in page:
            if limit is not None and count >= limit:
                return
            count += 1
            yield stored_leaf(mapper, run_id, version, state)


def _leaf_hashes(journal: Journal, *, limit: int | None = None) -> list[bytes]:
    return [leaf_hash(leaf) for leaf in iter_leaves(journal, limit=limit)]


# -- tree heads -----------------------------------------------------------------------------


def tree_head(journal: Journal, *, now: datetime | None = None) -> dict[str, Any]:
    """The unsigned tree head of the whole log: O(n) hashing, O(log n) memory."""
    builder = merkle.RootBuilder()
    for leaf in iter_leaves(journal):
        builder.add(leaf_hash(leaf))
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return {"format": CHECKPOINT_FORMAT, "tree_size": builder.size, "root_hash": builder.root().hex(),
            "timestamp": moment.isoformat().replace("+00:00", "Z")}


def signed_bytes(head: Mapping[str, Any]) -> bytes:
    """What a checkpoint's signature signs: the RFC 8785 JSON of its head fields."""
    return rfc8785.dumps({k: head[k] for k in HEAD_FIELDS})


def sign(head: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The head with an Ed25519 signature and the public key that checks it."""
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signature = {"algorithm": SIGNATURE_ALGORITHM, "public_key": public.hex(),
                 "value": key.sign(signed_bytes(head)).hex()}
    return {**{k: head[k] for k in HEAD_FIELDS}, "signature": signature}


def checkpoint(journal: Journal, *, key: Ed25519PrivateKey | None = None, now: datetime | None = None) -> dict[str, Any]:
    """A tree head of the log, signed when ``key`` is given."""
    head = tree_head(journal, now=now)
    return sign(head, key) if key is not None else head


def fingerprint(public_key_hex: str) -> str:
    """A short name for a public key: the first 16 hex digits of the sha256 of its 32 bytes."""
    return hashlib.sha256(bytes.fromhex(public_key_hex)).hexdigest()[:16]


# -- keys ---------------------------------------------------------------------------------


def generate_key() -> tuple[bytes, bytes]:
    """A new Ed25519 key as (private PEM, public PEM), the files ``openssl genpkey -algorithm ed25519`` writes."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file (PKCS#8, unencrypted)."""
    data = _read_bytes(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        raise InvalidInput(str(path), f"not a PEM private key ({_first_line(e)})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(str(path), "not an Ed25519 key (create one with `runjournal checkpoint keygen`)")
    return key


def load_public_key(path: Path) -> str:
    """The hex of an Ed25519 public key from a PEM file (a private key file gives its public half)."""
    data = _read_bytes(path)
    key: Any
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        try:
            key = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as e:
            raise InvalidInput(str(path), f"not a PEM public key ({_first_line(e)})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidInput(str(path), "not an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


# -- reading documents ----------------------------------------------------------------------


def read_document(path: Path) -> dict[str, Any]:
    """A JSON object from a file, or ``InvalidInput`` naming the file."""
    try:
        value = orjson.loads(_read_bytes(path))
    except orjson.JSONDecodeError as e:
        raise InvalidInput(str(path), f"not valid JSON ({_first_line(e)})") from None
    if not isinstance(value, dict):
        raise InvalidInput(str(path), "not a JSON object")
    return value


def parse_checkpoint(doc: Mapping[str, Any], source: str = "checkpoint") -> dict[str, Any]:
    """A checkpoint whose every field has the right shape, or ``InvalidInput`` naming the first that does not."""
    if doc.get("format") != CHECKPOINT_FORMAT:
        raise InvalidInput(source, f"not a checkpoint (format is {doc.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    size = doc.get("tree_size")
    if type(size) is not int or size < 0:
        raise InvalidInput(source, "tree_size must be a whole number >= 0")
    if not isinstance(doc.get("root_hash"), str) or not _HEX64.fullmatch(doc["root_hash"]):
        raise InvalidInput(source, "root_hash must be 64 lowercase hex digits")
    if not isinstance(doc.get("timestamp"), str):
        raise InvalidInput(source, "timestamp must be a string")
    extra = set(doc) - {*HEAD_FIELDS, "signature"}
    if extra:
        raise InvalidInput(source, f"unexpected field {min(extra)!r}")
    signature = doc.get("signature")
    if signature is not None:
        if not isinstance(signature, dict) or signature.get("algorithm") != SIGNATURE_ALGORITHM:
            raise InvalidInput(source, f"signature must be an object with algorithm {SIGNATURE_ALGORITHM!r}")
        if not isinstance(signature.get("public_key"), str) or not _HEX64.fullmatch(signature["public_key"]):
            raise InvalidInput(source, "signature.public_key must be 64 lowercase hex digits")
        if not isinstance(signature.get("value"), str) or not _HEX128.fullmatch(signature["value"]):
            raise InvalidInput(source, "signature.value must be 128 lowercase hex digits")
    return dict(doc)


def signature_problem(doc: Mapping[str, Any], *, public_key: str | None = None) -> str:
    """Why a (parsed) checkpoint's signature cannot be trusted, or "" when it verifies.

    With ``public_key`` (hex) the checkpoint must be signed by that key; without
    it, a signature present must verify with the key it carries, which shows the
    file is unchanged since that key signed it (compare the key's fingerprint).
    """
    signature = doc.get("signature")
    if signature is None:
        return "checkpoint is not signed, but a public key was given" if public_key else ""
    if public_key is not None and signature["public_key"] != public_key:
        return (f"checkpoint is signed by another key ({fingerprint(signature['public_key'])}, "
                f"expected {fingerprint(public_key)})")
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(signature["public_key"]))
        key.verify(bytes.fromhex(signature["value"]), signed_bytes(doc))
    except (InvalidSignature, ValueError):
        return "checkpoint signature does not verify: the checkpoint was edited or the signature forged"
    return ""


# -- consistency: today's log extends a checkpoint --------------------------------------------


@dataclass
class CheckpointReport:
    """What ``verify_checkpoint`` found."""

    ok: bool
    checkpoint_size: int
    tree_size: int
    root_hash: str
    consistency_path: list[str] = field(default_factory=list)
    signed_by: str | None = None
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        return {"ok": self.ok, "checkpoint_size": self.checkpoint_size, "tree_size": self.tree_size,
                "root_hash": self.root_hash, "consistency_path": self.consistency_path,
                "signed_by": self.signed_by, "problems": self.problems}


def verify_checkpoint(
    journal: Journal, checkpoint_doc: Mapping[str, Any] | Path | str, *, public_key: str | None = None
) -> CheckpointReport:
    """Prove with an RFC 9162 consistency proof that today's log extends a checkpoint.

    ``checkpoint_doc`` is a checkpoint (as read) or the path of its file; a
    malformed one raises ``InvalidInput``. Problems (a bad signature, a log
    shorter than the checkpoint, a proof that fails: events before it were
    rewritten, removed or reordered) are reported, each as one line.
    """
    if isinstance(checkpoint_doc, (str, Path)):
        source = str(checkpoint_doc)
        doc = parse_checkpoint(read_document(Path(checkpoint_doc)), source)
    else:
        doc = parse_checkpoint(checkpoint_doc)
    problems: list[str] = []
    signature_issue = signature_problem(doc, public_key=public_key)
    if signature_issue:
        problems.append(signature_issue)
    signed_by = fingerprint(doc["signature"]["public_key"]) if doc.get("signature") and not signature_issue else None
    leaves = _leaf_hashes(journal)
    m, n = doc["tree_size"], len(leaves)
    current = merkle.root(leaves)
    path: list[bytes] = []
    if m > n:
        problems.append(f"log truncated: {n} events, the checkpoint holds {m}")
    else:
        if 0 < m < n:
            path = merkle.consistency_proof(m, leaves)
        if not merkle.verify_consistency(m, n, bytes.fromhex(doc["root_hash"]), current, path):
            problems.append(f"log does not extend the checkpoint: of its first {m} events some were "
                            "rewritten, removed or reordered (the consistency proof fails)")
    return CheckpointReport(ok=not problems, checkpoint_size=m, tree_size=n, root_hash=current.hex(),
                            consistency_path=[p.hex() for p in path], signed_by=signed_by, problems=problems)


# -- inclusion: one event is in the tree ----------------------------------------------------


def inclusion_proof(
    journal: Journal, run_id: str, *, version: int | None = None, checkpoint_doc: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """An inclusion proof of one event (the run's last when ``version`` is None).

    Against the whole log, or against ``checkpoint_doc``'s tree when given (the
    log must still extend it, and the event must be among its events).
    """
    wanted = _run_id(run_id)
    limit = None
    if checkpoint_doc is not None:
        checkpoint_doc = parse_checkpoint(checkpoint_doc)
        limit = checkpoint_doc["tree_size"]
    hashes: list[bytes] = []
    found: dict[int, tuple[int, dict[str, Any]]] = {}
    for index, leaf in enumerate(iter_leaves(journal, limit=limit)):
        hashes.append(leaf_hash(leaf))
        if leaf["run_id"] == wanted:
            found[leaf["version"]] = (index, leaf)
    if checkpoint_doc is not None and (
        len(hashes) < checkpoint_doc["tree_size"] or merkle.root(hashes).hex() != checkpoint_doc["root_hash"]
    ):
        raise InvalidInput("--checkpoint", "the log no longer matches this checkpoint (run `verify --checkpoint`)")
    if not found:
        if checkpoint_doc is not None and journal_has_run(journal, wanted):
            raise InvalidInput("--checkpoint", f"run {wanted} was written after this checkpoint")
        raise RunNotFound(wanted)
    chosen = max(found) if version is None else version
    if chosen not in found:
        after = " in this checkpoint" if checkpoint_doc is not None else ""
        raise InvalidInput("--version", f"run {wanted} has no version {chosen}{after} (it has 1..{max(found)})")
    index, leaf = found[chosen]
    proof = {"format": PROOF_FORMAT, "leaf_index": index, "tree_size": len(hashes),
             "root_hash": merkle.root(hashes).hex(), "leaf": leaf, "leaf_hash": hashes[index].hex(),
             "audit_path": [p.hex() for p in merkle.inclusion_proof(index, hashes)]}
    if checkpoint_doc is not None:
        proof["checkpoint"] = checkpoint_doc
    return proof


def journal_has_run(journal: Journal, run_id: str) -> bool:
    """True when the store holds an event of ``run_id``."""
    return any(leaf["run_id"] == run_id for leaf in iter_leaves(journal))


def verify_proof(
    proof: Mapping[str, Any],
    *,
    checkpoint_doc: Mapping[str, Any] | None = None,
    public_key: str | None = None,
    source: str = "proof",
) -> str:
    """Check an inclusion proof offline; returns "" when it holds, else the one reason it does not.

    With ``checkpoint_doc`` (or the checkpoint the proof carries), the proof's
    tree must be the checkpoint's (same size and root), whose signature must
    verify (with ``public_key`` when given). A malformed proof raises ``InvalidInput``.
    """
    parsed = parse_proof(proof, source)
    if checkpoint_doc is None and parsed.get("checkpoint") is not None:
        checkpoint_doc = parsed["checkpoint"]
    if checkpoint_doc is not None:
        checkpoint_doc = parse_checkpoint(checkpoint_doc)
        issue = signature_problem(checkpoint_doc, public_key=public_key)
        if issue:
            return issue
        if (checkpoint_doc["tree_size"], checkpoint_doc["root_hash"]) != (parsed["tree_size"], parsed["root_hash"]):
            return (f"the proof is for another tree (size {parsed['tree_size']}) than the checkpoint's "
                    f"(size {checkpoint_doc['tree_size']})")
    elif public_key is not None:
        return "a public key was given but there is no checkpoint to check it against"
    computed = leaf_hash(parsed["leaf"])
    if parsed.get("leaf_hash") is not None and parsed["leaf_hash"] != computed.hex():
        return "leaf_hash is not the hash of the leaf: the proof was edited"
    path = [bytes.fromhex(p) for p in parsed["audit_path"]]
    if not merkle.verify_inclusion(computed, parsed["leaf_index"], parsed["tree_size"], path,
                                   bytes.fromhex(parsed["root_hash"])):
        return "the audit path does not lead from the leaf to the root: the proof was edited or forged"
    return ""


def parse_proof(doc: Mapping[str, Any], source: str = "proof") -> dict[str, Any]:
    """An inclusion proof whose fields have the right shape, or ``InvalidInput``."""
    if doc.get("format") != PROOF_FORMAT:
        raise InvalidInput(source, f"not an inclusion proof (format is {doc.get('format')!r}, expected {PROOF_FORMAT!r})")
    for name in ("leaf_index", "tree_size"):
        if type(doc.get(name)) is not int or doc[name] < 0:
            raise InvalidInput(source, f"{name} must be a whole number >= 0")
    if not isinstance(doc.get("root_hash"), str) or not _HEX64.fullmatch(doc["root_hash"]):
        raise InvalidInput(source, "root_hash must be 64 lowercase hex digits")
    path = doc.get("audit_path")
    if not isinstance(path, list) or not all(isinstance(p, str) and _HEX64.fullmatch(p) for p in path):
        raise InvalidInput(source, "audit_path must be a list of 64-hex-digit hashes")
    leaf = doc.get("leaf")
    if not isinstance(leaf, dict) or not isinstance(leaf.get("run_id"), str) or type(leaf.get("version")) is not int:
        raise InvalidInput(source, "leaf must be an object with run_id and version")
    try:
        leaf_data(leaf)
    except rfc8785.CanonicalizationError as e:
        raise InvalidInput(source, f"leaf cannot be canonicalised ({e})") from None
    if doc.get("leaf_hash") is not None and not (isinstance(doc["leaf_hash"], str) and _HEX64.fullmatch(doc["leaf_hash"])):
        raise InvalidInput(source, "leaf_hash must be 64 lowercase hex digits")
    return dict(doc)


def dumps(doc: Mapping[str, Any]) -> bytes:
    """A checkpoint or proof file's text: indented JSON, sorted keys."""
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InvalidInput(str(path), "file not found") from None
    except IsADirectoryError:
        raise InvalidInput(str(path), "is a folder, not a file") from None


def _run_id(run_id: str) -> str:
    try:
        return str(UUID(run_id))
    except ValueError:
        return run_id


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


__all__ = [
    "CHECKPOINT_FORMAT",
    "PROOF_FORMAT",
    "CheckpointReport",
    "checkpoint",
    "generate_key",
    "inclusion_proof",
    "iter_leaves",
    "leaf_data",
    "leaf_hash",
    "load_private_key",
    "load_public_key",
    "parse_checkpoint",
    "sign",
    "signature_problem",
    "tree_head",
    "verify_checkpoint",
    "verify_proof",
]

"""Merkle checkpoints over the log: proofs against an independent RFC 9162 implementation, and forgeries caught.

The naive functions below are RFC 9162's definitions (section 2.1) written as
recursion over the leaf data, sharing no code with ``runjournal.app.merkle``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from types import SimpleNamespace

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from runjournal.domain import InvalidInput, RunNotFound, chain

from runjournal import Journal
from runjournal.app import anchors as anchoring
from runjournal.app import audit, checkpoints, merkle
from runjournal.app.decoding import expected_link

from .helpers import finished_run

# -- RFC 9162, section 2.1, verbatim ------------------------------------------------------------


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return _h(b"")
    if n == 1:
        return _h(b"\x00" + d[0])
    k = _k(n)
    return _h(b"\x01" + naive_mth(d[:k]) + naive_mth(d[k:]))


def naive_path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return naive_path(m, d[:k]) + [naive_mth(d[k:])]
    return naive_path(m - k, d[k:]) + [naive_mth(d[:k])]


def naive_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [naive_mth(d)]
    k = _k(n)
    if m <= k:
        return naive_subproof(m, d[:k], b) + [naive_mth(d[k:])]
    return naive_subproof(m - k, d[k:], False) + [naive_mth(d[:k])]


def naive_proof(m: int, d: list[bytes]) -> list[bytes]:
    return naive_subproof(m, d, True)


def _data(n: int) -> list[bytes]:
    return [f"leaf {i}".encode() for i in range(n)]


_roots: dict[int, bytes] = {}


def _naive_root(n: int) -> bytes:
    if n not in _roots:
        _roots[n] = naive_mth(_data(n))
    return _roots[n]


# -- the pure tree functions ----------------------------------------------------------------------

# Certificate Transparency's reference test tree (eight leaves) and its roots for sizes 1..8.
CT_LEAVES = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
             bytes(range(0x50, 0x58)), bytes(range(0x60, 0x70))]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_roots_match_the_certificate_transparency_test_vectors() -> None:
    hashes = [merkle.leaf_hash(d) for d in CT_LEAVES]
    assert merkle.root([]) == merkle.EMPTY_ROOT == _h(b"")
    for n, expected in enumerate(CT_ROOTS, start=1):
        assert merkle.root(hashes[:n]).hex() == expected == naive_mth(CT_LEAVES[:n]).hex()


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_inclusion_proofs_match_the_rfc_and_verify(case: tuple[int, int]) -> None:
    n, m = case
    d = _data(n)
    hashes = [merkle.leaf_hash(x) for x in d]
    root = merkle.root(hashes)
    assert root == _naive_root(n)
    path = merkle.inclusion_proof(m, hashes)
    assert path == naive_path(m, d)
    assert merkle.verify_inclusion(hashes[m], m, n, path, root)
    # every wrong claim is refused
    assert not merkle.verify_inclusion(merkle.leaf_hash(b"other"), m, n, path, root)
    assert not merkle.verify_inclusion(hashes[m], m, n, path, _h(b"not the root"))
    if n > 1:
        assert not merkle.verify_inclusion(hashes[m], (m + 1) % n, n, path, root)
        assert not merkle.verify_inclusion(hashes[m], m, n, path[:-1], root)
        forged = [*path]
        forged[len(forged) // 2] = _h(b"forged")
        assert not merkle.verify_inclusion(hashes[m], m, n, forged, root)
    assert not merkle.verify_inclusion(hashes[m], m, n, [*path, _h(b"extra")], root)
    assert not merkle.verify_inclusion(hashes[m], n, n, path, root)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_consistency_proofs_match_the_rfc_and_verify(case: tuple[int, int]) -> None:
    m, n = case
    d = _data(n)
    hashes = [merkle.leaf_hash(x) for x in d]
    first, second = _naive_root(m), _naive_root(n)
    proof = merkle.consistency_proof(m, hashes)
    assert proof == naive_proof(m, d)
    assert merkle.verify_consistency(m, n, first, second, proof)
    assert merkle.verify_consistency(0, n, merkle.EMPTY_ROOT, second, [])
    # a different old tree (one leaf changed) is not a prefix of this one
    changed = [*d[: m - 1], b"rewritten", *d[m:]]
    assert not merkle.verify_consistency(m, n, naive_mth(changed[:m]), second, proof)
    assert not merkle.verify_consistency(m, n, first, naive_mth(changed), proof)
    if m < n:
        assert not merkle.verify_consistency(m, n, first, second, [])
        assert not merkle.verify_consistency(m, n, first, second, [*proof[:-1], _h(b"forged")])
    # (the sizes themselves are bound by the signed tree heads, not by the proof)


def test_the_root_builder_keeps_log_n_hashes() -> None:
    builder = merkle.RootBuilder()
    for i in range(1, 1025):
        builder.add(merkle.leaf_hash(str(i).encode()))
        assert len(builder._stack) == i.bit_count()


# -- the log as a tree ----------------------------------------------------------------------------


@pytest.fixture
def store(sqlite_url: str):
    j = Journal.open(sqlite_url)
    runs = [finished_run(j, f"hello {i}") for i in range(4)]
    yield j, runs, str(sqlite_url).removeprefix("sqlite:///")
    j.close()


def _reopen(j: Journal) -> Journal:
    return Journal.open(j.url)


def _rows(path: str, run_id: str) -> list[tuple[int, int, str, bytes]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT rowid, originator_version, topic, state FROM stored_events WHERE originator_id = ?"
            " ORDER BY originator_version", (run_id.replace("-", ""),)).fetchall()


def _rewrite_run(j: Journal, path: str, run_id: str, edit) -> None:
    """Rewrite every event of a run with ``edit(version, fields)`` and recompute its whole chain,
    as an attacker with write access to the file could: ``verify`` finds nothing."""
    transcoder = j._store.mapper.transcoder
    previous = chain.GENESIS
    with sqlite3.connect(path) as db:
        for rowid, version, topic, state in _rows(path, run_id):
            fields = transcoder.decode(state)
            edit(version, fields)
            n = SimpleNamespace(topic=topic, originator_id=run_id, originator_version=version)
            fields["chain"] = previous = expected_link(previous, n, fields)
            db.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (transcoder.encode(fields), rowid))


def test_a_store_written_in_format_1_keeps_verifying_and_runs_go_on_in_format_2(sqlite_url: str) -> None:
    path = sqlite_url.removeprefix("sqlite:///")
    j = Journal.open(sqlite_url)
    run_id = j.submit(agent_id="echo", input={"message": "old"}).run_id
    j.close()
    _rewrite_run(j, path, run_id, lambda _v, fields: fields.pop(chain.FORMAT_FIELD))  # as written before format 2
    j = Journal.open(sqlite_url)
    assert j.verify().ok
    claim = j.claim_next(worker_id="w1")
    j.start(claim)
    j.complete(claim, output={"n": 1.5})
    transcoder = j._store.mapper.transcoder
    formats = [transcoder.decode(state).get(chain.FORMAT_FIELD) for *_, state in _rows(path, run_id)]
    assert formats == [None, None, 2, 2, 2]
    report = _reopen(j).verify()
    assert report.ok and report.events_checked == 5
    j.close()


def test_the_root_can_be_recomputed_from_an_export_alone(store) -> None:
    j, _runs, _ = store
    leaves = [rfc8785.dumps({"chain": r["chain"], "run_id": r["run_id"], "version": r["version"]})
              for r in audit.export_events(j)]
    head = checkpoints.tree_head(j)
    assert head["tree_size"] == len(leaves) == 20
    assert head["root_hash"] == naive_mth(leaves).hex()


def test_every_event_has_an_inclusion_proof_an_auditor_checks_offline(store) -> None:
    j, runs, _ = store
    head = checkpoints.checkpoint(j)
    for run_id in runs:
        for version in range(1, 6):
            proof = checkpoints.inclusion_proof(j, run_id, version=version)
            assert proof["root_hash"] == head["root_hash"] and proof["tree_size"] == 20
            assert checkpoints.verify_proof(json.loads(checkpoints.dumps(proof))) == ""
            data = rfc8785.dumps(proof["leaf"])
            assert merkle.verify_inclusion(merkle.leaf_hash(data), proof["leaf_index"], proof["tree_size"],
                                           [bytes.fromhex(p) for p in proof["audit_path"]],
                                           bytes.fromhex(head["root_hash"]))
    last = checkpoints.inclusion_proof(j, runs[0])
    assert last["leaf"]["version"] == 5
    with pytest.raises(RunNotFound):
        checkpoints.inclusion_proof(j, "7d6f3c1e-0b7d-4c55-9f0e-2d1b7a9e5c11")
    with pytest.raises(InvalidInput, match="no version 9"):
        checkpoints.inclusion_proof(j, runs[0], version=9)


def test_an_edited_proof_is_refused(store) -> None:
    j, runs, _ = store
    proof = checkpoints.inclusion_proof(j, runs[1], version=2)
    edits = [
        {"leaf": {**proof["leaf"], "version": 3}},
        {"leaf": {**proof["leaf"], "chain": "f" * 64}, "leaf_hash": None},
        {"leaf_index": proof["leaf_index"] + 1},
        {"audit_path": list(reversed(proof["audit_path"]))},
        {"root_hash": "0" * 64},
    ]
    for edit in edits:
        assert checkpoints.verify_proof({**proof, **edit}) != "", edit
    # a path alone does not fix the tree's size (leaf 6 of 20 and of 21 share one): the checkpoint does
    head = checkpoints.tree_head(j)
    assert checkpoints.verify_proof(proof, checkpoint_doc=head) == ""
    assert "another tree" in checkpoints.verify_proof({**proof, "tree_size": 21}, checkpoint_doc=head)
    with pytest.raises(InvalidInput, match="audit_path"):
        checkpoints.verify_proof({**proof, "audit_path": ["zz"]})


def test_a_checkpoint_verifies_while_the_log_grows(store) -> None:
    j, _runs, _ = store
    doc = checkpoints.checkpoint(j)
    assert checkpoints.verify_checkpoint(j, doc).ok
    finished_run(j, "later")
    report = checkpoints.verify_checkpoint(_reopen(j), doc)
    assert report.ok and (report.checkpoint_size, report.tree_size) == (20, 25)
    assert report.consistency_path  # proven, not just compared
    assert merkle.verify_consistency(20, 25, bytes.fromhex(doc["root_hash"]), bytes.fromhex(report.root_hash),
                                     [bytes.fromhex(p) for p in report.consistency_path])


def test_a_consistent_rewrite_of_a_whole_run_passes_verify_but_not_the_checkpoint(store) -> None:
    j, runs, path = store
    doc = checkpoints.checkpoint(j)
    anchors = anchoring.take(j)
    victim = runs[2]

    def forge(version: int, fields: dict) -> None:
        if version == 5:
            fields["output"] = {"text": "forged"}

    _rewrite_run(j, path, victim, forge)
    fresh = _reopen(j)
    assert fresh.get_run(victim).output == {"text": "forged"}
    assert fresh.verify().ok  # every chain verifies: the rewrite is consistent
    assert anchoring.check(fresh, anchors)  # (an anchor of that run's head sees it too)
    report = checkpoints.verify_checkpoint(fresh, doc)
    assert not report.ok
    (problem,) = report.problems
    assert "rewritten, removed or reordered" in problem


def test_a_removed_run_is_caught_even_when_the_log_grew_back(store) -> None:
    j, runs, path = store
    doc = checkpoints.checkpoint(j)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM stored_events WHERE originator_id = ?", (runs[1].replace("-", ""),))
    fresh = _reopen(j)
    assert fresh.verify().ok
    (problem,) = checkpoints.verify_checkpoint(fresh, doc).problems
    assert problem == "log truncated: 15 events, the checkpoint holds 20"
    finished_run(fresh, "a")
    finished_run(fresh, "b")
    (problem,) = checkpoints.verify_checkpoint(_reopen(j), doc).problems
    assert "consistency proof fails" in problem


def test_events_moved_between_runs_in_log_order_are_caught(store) -> None:
    j, runs, path = store
    doc = checkpoints.checkpoint(j)
    with sqlite3.connect(path) as db:  # run 0's last event and run 1's first event swap log positions
        (a,) = db.execute("SELECT rowid FROM stored_events WHERE originator_id = ? AND originator_version = 5",
                          (runs[0].replace("-", ""),)).fetchone()
        (b,) = db.execute("SELECT rowid FROM stored_events WHERE originator_id = ? AND originator_version = 1",
                          (runs[1].replace("-", ""),)).fetchone()
        db.execute("UPDATE stored_events SET rowid = -1 WHERE rowid = ?", (a,))
        db.execute("UPDATE stored_events SET rowid = ? WHERE rowid = ?", (a, b))
        db.execute("UPDATE stored_events SET rowid = ? WHERE rowid = -1", (b,))
    fresh = _reopen(j)
    assert fresh.verify().ok  # each run is still in order
    assert not checkpoints.verify_checkpoint(fresh, doc).ok


def test_events_of_broken_runs_are_leaves_too(store) -> None:
    j, runs, path = store
    with sqlite3.connect(path) as db:
        db.execute("UPDATE stored_events SET state = X'7b7b' WHERE originator_id = ? AND originator_version = 2",
                   (runs[0].replace("-", ""),))
    fresh = _reopen(j)
    assert not fresh.verify().ok
    leaves = list(checkpoints.iter_leaves(fresh))
    assert len(leaves) == 20
    assert leaves[1] == {"chain": None, "run_id": runs[0], "version": 2,
                         "stored_sha256": hashlib.sha256(b"{{").hexdigest()}
    doc = checkpoints.checkpoint(fresh)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE stored_events SET state = X'7b7c' WHERE originator_id = ? AND originator_version = 2",
                   (runs[0].replace("-", ""),))
    assert not checkpoints.verify_checkpoint(_reopen(j), doc).ok


def test_proofs_against_a_checkpoint(store) -> None:
    j, runs, _ = store
    doc = checkpoints.checkpoint(j)
    later = finished_run(j, "after the checkpoint")
    fresh = _reopen(j)
    proof = checkpoints.inclusion_proof(fresh, runs[3], version=4, checkpoint_doc=doc)
    assert (proof["tree_size"], proof["root_hash"]) == (20, doc["root_hash"])
    assert checkpoints.verify_proof(proof, checkpoint_doc=doc) == ""
    today = checkpoints.inclusion_proof(fresh, runs[3], version=4)
    assert "another tree" in checkpoints.verify_proof(today, checkpoint_doc=doc)
    with pytest.raises(InvalidInput, match="written after this checkpoint"):
        checkpoints.inclusion_proof(fresh, later, checkpoint_doc=doc)


# -- signatures ---------------------------------------------------------------------------------------


def test_signed_checkpoints_and_forgeries(store) -> None:
    j, _runs, _ = store
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    public = checkpoints.sign({"format": "x", "tree_size": 0, "root_hash": "", "timestamp": ""}, key)["signature"]["public_key"]
    doc = checkpoints.checkpoint(j, key=key)
    assert checkpoints.verify_checkpoint(j, doc, public_key=public).ok
    assert checkpoints.signature_problem(doc) == ""
    forged_value = {**doc, "signature": {**doc["signature"], "value": ("0" if doc["signature"]["value"][0] != "0" else "1")
                                         + doc["signature"]["value"][1:]}}
    edited_head = {**doc, "tree_size": 19}
    resigned = checkpoints.checkpoint(j, key=other)
    for forged, expected in [(forged_value, "does not verify"), (edited_head, "does not verify"),
                             (resigned, "signed by another key"), (checkpoints.tree_head(j), "not signed")]:
        report = checkpoints.verify_checkpoint(j, forged, public_key=public)
        assert not report.ok and expected in report.problems[0]
    # without a trusted key an edited signed checkpoint is still refused
    assert "does not verify" in checkpoints.signature_problem(edited_head)


def test_malformed_checkpoints_are_one_clear_error(store, tmp_path) -> None:
    j, _runs, _ = store
    doc = checkpoints.checkpoint(j)
    for bad, words in [({**doc, "tree_size": "20"}, "tree_size"), ({**doc, "root_hash": "ABC"}, "root_hash"),
                       ({**doc, "format": "other"}, "not a checkpoint"), ({**doc, "extra": 1}, "unexpected field"),
                       ({**doc, "signature": {"algorithm": "rsa"}}, "signature")]:
        with pytest.raises(InvalidInput, match=words):
            checkpoints.verify_checkpoint(j, bad)
    broken = tmp_path / "c.json"
    broken.write_text("{not json")
    with pytest.raises(InvalidInput, match="not valid JSON"):
        checkpoints.verify_checkpoint(j, broken)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e)),
       st.integers(-(2**53) + 1, 2**53 - 1))
def test_leaf_data_is_the_rfc_8785_json_of_the_leaf(run_id: str, chain_value: str, version: int) -> None:
    for leaf in ({"chain": chain_value, "run_id": run_id, "version": version},
                 {"chain": "ab" * 32, "run_id": "7d6f3c1e-0b7d-4c55-9f0e-2d1b7a9e5c11", "version": version},
                 {"chain": None, "run_id": run_id, "version": version, "stored_sha256": "cd" * 32}):
        assert checkpoints.leaf_data(leaf) == rfc8785.dumps(leaf)

"""CLI round trips: checkpoint (keygen, --sign, verify), prove, verify-proof; tampering refused in one line, exit 1."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from .conftest import CLI


@pytest.fixture
def rj(populated) -> tuple[CLI, dict[str, Any], Path]:
    cli, hello, _deploy = populated
    return cli, hello, cli.cwd


def _one_line_failure(result, *words: str) -> None:
    """Exit 1 with one line: on stderr for a refused file, on stdout for a `broken:` finding (as `verify`)."""
    assert result.code == 1, result
    lines = (result.out + result.err).strip().splitlines()
    assert len(lines) == 1, result
    for word in words:
        assert word in " ".join(lines[0].split()), result


def test_sign_checkpoint_prove_and_verify_offline(rj) -> None:
    cli, hello, folder = rj
    keygen = cli("checkpoint", "keygen", "--out", "signing.pem")
    assert keygen.code == 0, keygen.err
    assert (folder / "signing.pem").stat().st_mode & 0o777 == 0o600 and (folder / "signing.pub.pem").is_file()
    made = cli("checkpoint", "--sign", "signing.pem", "--out", "cp.json")
    assert made.code == 0 and "signed by key" in made.out, made.err
    doc = json.loads((folder / "cp.json").read_text())
    assert doc["format"] == "runjournal-checkpoint/1" and doc["tree_size"] > 0 and doc["signature"]["algorithm"] == "ed25519"
    ok = cli("checkpoint", "verify", "cp.json", "--public-key", "signing.pub.pem")
    assert ok.code == 0 and ok.out.startswith("ok: the log"), ok.err
    proved = cli("prove", hello["run_id"], "--version", "2", "--checkpoint", "cp.json", "--out", "proof.json")
    assert proved.code == 0, proved.err
    proof = json.loads((folder / "proof.json").read_text())
    assert proof["leaf"]["version"] == 2 and proof["tree_size"] == doc["tree_size"]
    # offline: no store at all
    elsewhere = CLI(folder, None, env={"RUNJOURNAL_URL": "sqlite:///nowhere/none.db"})
    checked = elsewhere("verify-proof", "proof.json", "--checkpoint", "cp.json", "--public-key", "signing.pub.pem")
    assert checked.code == 0 and checked.out.startswith(f"ok: run {hello['run_id']} version 2 is leaf"), checked.err
    as_json = elsewhere("verify-proof", "proof.json", "--json").json()
    assert as_json["ok"] and as_json["leaf_index"] == proof["leaf_index"]


def test_prove_prints_json_for_the_last_event_by_default(rj) -> None:
    cli, hello, _ = rj
    proof = cli("prove", hello["run_id"])
    assert proof.code == 0, proof.err
    assert proof.json()["leaf"]["version"] == 5 and proof.json()["leaf"]["run_id"] == hello["run_id"]
    printed = cli("checkpoint").json()
    assert printed["root_hash"] == proof.json()["root_hash"] and "signature" not in printed


def test_tampered_proofs_checkpoints_and_signatures_are_refused(rj) -> None:
    cli, hello, folder = rj
    assert cli("checkpoint", "keygen", "--out", "k.pem").code == 0
    assert cli("checkpoint", "keygen", "--out", "other.pem").code == 0
    assert cli("checkpoint", "--sign", "k.pem", "--out", "cp.json").code == 0
    assert cli("prove", hello["run_id"], "--checkpoint", "cp.json", "--out", "proof.json").code == 0
    doc = json.loads((folder / "cp.json").read_text())
    proof = json.loads((folder / "proof.json").read_text())

    def write(name: str, value: Any) -> str:
        (folder / name).write_text(json.dumps(value))
        return name

    path = proof["audit_path"]
    bad_path = write("bad-path.json", {**proof, "audit_path": [path[0][::-1], *path[1:]]})
    _one_line_failure(cli("verify-proof", bad_path), "refused:", "audit path")
    sig = doc["signature"]["value"]
    forged = write("forged.json", {**doc, "signature": {**doc["signature"], "value": ("1" if sig[0] == "0" else "0") + sig[1:]}})
    _one_line_failure(cli("verify-proof", "proof.json", "--checkpoint", forged), "refused:", "signature does not verify")
    _one_line_failure(cli("checkpoint", "verify", forged), "broken:", "signature does not verify")
    _one_line_failure(cli("verify-proof", "proof.json", "--checkpoint", "cp.json", "--public-key", "other.pub.pem"),
                      "signed by another key")
    moved = write("moved.json", {**doc, "root_hash": "ab" * 32})
    _one_line_failure(cli("verify-proof", "proof.json", "--checkpoint", moved), "refused:")
    unsigned = write("unsigned.json", {k: v for k, v in doc.items() if k != "signature"} | {"root_hash": "ab" * 32})
    _one_line_failure(cli("checkpoint", "verify", unsigned), "broken:", "does not extend the checkpoint")
    (folder / "junk.json").write_text("{oops")
    _one_line_failure(cli("checkpoint", "verify", "junk.json"), "error:", "junk.json", "not valid JSON")
    _one_line_failure(cli("verify-proof", "junk.json"), "error:", "not valid JSON")
    _one_line_failure(cli("checkpoint", "--out", "cp.json"), "already exists")
    _one_line_failure(cli("checkpoint", "--sign", "proof.json"), "not a PEM private key")


def test_a_rewritten_store_no_longer_extends_its_checkpoint(rj) -> None:
    cli, hello, folder = rj
    assert cli("checkpoint", "--out", "cp.json").code == 0
    with sqlite3.connect(folder / "j.db") as db:
        db.execute("DELETE FROM stored_events WHERE originator_id = ?", (hello["run_id"].replace("-", ""),))
    _one_line_failure(cli("checkpoint", "verify", "cp.json"), "broken: log truncated")


def test_verify_proves_the_log_extends_a_checkpoint(rj) -> None:
    cli, hello, folder = rj
    assert cli("checkpoint", "keygen", "--out", "k.pem").code == 0
    assert cli("checkpoint", "--sign", "k.pem", "--out", "cp.json").code == 0
    report = cli("verify", "--checkpoint", "cp.json", "--public-key", "k.pub.pem", "--json")
    assert report.code == 0 and report.json()["ok"] and report.json()["checkpoint"]["ok"], report
    with sqlite3.connect(folder / "j.db") as db:
        db.execute("DELETE FROM stored_events WHERE originator_id = ?", (hello["run_id"].replace("-", ""),))
    refused = cli("verify", "--checkpoint", "cp.json", "--public-key", "k.pub.pem")
    assert refused.code == 1 and "broken" in refused.out and "Traceback" not in refused.err, refused

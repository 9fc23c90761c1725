"""CLI verbs for checkpoints: checkpoint (and its keygen, verify), prove, verify-proof.

A checkpoint is a (signed) Merkle tree head of the whole log; ``prove`` prints an
inclusion proof of one event that ``verify-proof`` checks without the store.
See docs/checkpoints.md.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from . import outputs
from .common import JsonOption, Verbs, emit, err, full_run_id, guarded, opened, out
from .render import visible

if TYPE_CHECKING:
    from ..app import checkpoints

verbs = Verbs()
checkpoint_app = verbs.group("checkpoint", typer.Typer(
    help="Signed Merkle tree heads of the log, for auditors to hold.\n\n"
    "Examples:\n\n  runjournal checkpoint keygen --out signing.pem\n\n"
    "  runjournal checkpoint --sign signing.pem --out checkpoint-2026-11-24.json\n\n"
    "  runjournal verify --checkpoint checkpoint-2026-11-24.json",
))

ForceOption = Annotated[bool, typer.Option("--force", help="Replace the --out file if it exists.")]
PublicKeyOption = Annotated[
    Path | None,
    typer.Option("--public-key", help="The PEM public key the checkpoint must be signed with (the keygen .pub file)."),
]


def _write_or_print(doc: dict[str, Any], out_file: Path | None, force: bool) -> None:
    from ..app import checkpoints

    data = checkpoints.dumps(doc)
    if out_file is None:
        sys.stdout.write(data.decode())
    else:
        outputs.write_file(out_file, data, force=force)


def _refuse(source: str, reason: str) -> None:
    err.print(f"refused: {source}: {reason}", markup=False)
    raise typer.Exit(1)


@checkpoint_app.callback(invoke_without_command=True)
def checkpoint(
    ctx: typer.Context,
    sign: Annotated[Path | None, typer.Option("--sign", help="Sign with this Ed25519 private key (PEM).")] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the checkpoint here instead of stdout.")] = None,
    force: ForceOption = False,
) -> None:
    """Write a tree head of the whole log (size, root hash, time), signed with --sign.

    Example: runjournal checkpoint --sign signing.pem --out checkpoint.json
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..app import checkpoints

    with guarded():
        key = checkpoints.load_private_key(sign) if sign is not None else None
        if out_file is not None:
            outputs.check_output(out_file, force=force)  # before any work
    with opened(read_only=True) as journal:
        doc = checkpoints.checkpoint(journal, key=key)
        _write_or_print(doc, out_file, force)
    if out_file is not None:
        signed = f", signed by key {checkpoints.fingerprint(doc['signature']['public_key'])}" if key else ""
        out.print(f"checkpoint of {doc['tree_size']} events, root {doc['root_hash']}{signed}: wrote {out_file}",
                  markup=False)


@checkpoint_app.command("keygen")
def keygen(
    out_file: Annotated[Path, typer.Option("--out", help="The private key file to write (0600); FILE.pub gets the public key.")],
    force: ForceOption = False,
) -> None:
    """Create an Ed25519 signing key (PEM, as `openssl genpkey -algorithm ed25519` writes).

    Example: runjournal checkpoint keygen --out signing.pem   (writes signing.pem and signing.pub.pem)
    """
    from ..app import checkpoints

    public_file = out_file.with_name(f"{out_file.stem}.pub{out_file.suffix}" if out_file.suffix else f"{out_file.name}.pub")
    with guarded():
        private, public = checkpoints.generate_key()
        outputs.write_file(out_file, private, force=force, private=True)
        outputs.write_file(public_file, public, force=force)
        hex_key = checkpoints.load_public_key(public_file)
    out.print(f"wrote private key {out_file} (keep it secret) and public key {public_file} "
              f"(give it to auditors); fingerprint {checkpoints.fingerprint(hex_key)}", markup=False)


@checkpoint_app.command("verify")
def verify_checkpoint(
    file: Annotated[Path, typer.Argument(help="A checkpoint written by `runjournal checkpoint`.")],
    public_key: PublicKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Prove with a consistency proof that today's log extends a checkpoint (chains: `runjournal verify`).

    Example: runjournal checkpoint verify checkpoint.json --public-key signing.pub.pem
    """
    from ..app import checkpoints

    with guarded():
        key = checkpoints.load_public_key(public_key) if public_key is not None else None
        doc = checkpoints.parse_checkpoint(checkpoints.read_document(file), str(file))
    with opened(read_only=True) as journal, guarded():
        report = checkpoints.verify_checkpoint(journal, doc, public_key=key)
    emit(as_json, report.as_dict(), lambda: checkpoint_lines(report))
    if not report.ok:
        raise typer.Exit(1)


def checkpoint_lines(report: checkpoints.CheckpointReport) -> None:
    """A checkpoint verification, for people (also what `verify --checkpoint` prints)."""
    if report.ok:
        signed = f", signed by key {report.signed_by}" if report.signed_by else " (unsigned)"
        out.print(f"ok: the log ({report.tree_size} events) extends the checkpoint "
                  f"({report.checkpoint_size} events{signed})", markup=False)
    for problem in report.problems:
        out.print(f"broken: {visible(problem)}", markup=False)


@verbs.command()
def prove(
    run_id: Annotated[str, typer.Argument(help="The run whose event to prove.")],
    version: Annotated[int | None, typer.Option("--version", help="The event's version (default: the run's last).")] = None,
    checkpoint_file: Annotated[
        Path | None, typer.Option("--checkpoint", help="Prove against this checkpoint's tree, not today's log.")
    ] = None,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the proof here instead of stdout.")] = None,
    force: ForceOption = False,
) -> None:
    """Print an inclusion proof of one event (JSON: leaf index, tree size, root, audit path, leaf).

    Example: runjournal prove RUN_ID --version 3 --checkpoint checkpoint.json --out proof.json
    """
    from ..app import checkpoints

    with guarded():
        doc = (checkpoints.parse_checkpoint(checkpoints.read_document(checkpoint_file), str(checkpoint_file))
               if checkpoint_file is not None else None)
        if out_file is not None:
            outputs.check_output(out_file, force=force)  # before any work
    with opened(read_only=True) as journal, guarded():
        proof = checkpoints.inclusion_proof(journal, full_run_id(journal, run_id), version=version, checkpoint_doc=doc)
        _write_or_print(proof, out_file, force)
    if out_file is not None:
        out.print(f"run {proof['leaf']['run_id']} version {proof['leaf']['version']} is leaf "
                  f"{proof['leaf_index']} of {proof['tree_size']}: wrote {out_file}", markup=False)


@verbs.command("verify-proof")
def verify_proof(
    proof_file: Annotated[Path, typer.Argument(help="A proof written by `runjournal prove`.")],
    checkpoint_file: Annotated[
        Path | None, typer.Option("--checkpoint", help="The checkpoint the proof must be for (and its signature).")
    ] = None,
    public_key: PublicKeyOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check an inclusion proof offline, without the store; exit 1 with the reason when it fails.

    Example: runjournal verify-proof proof.json --checkpoint checkpoint.json --public-key signing.pub.pem
    """
    from ..app import checkpoints

    with guarded():
        key = checkpoints.load_public_key(public_key) if public_key is not None else None
        doc = (checkpoints.parse_checkpoint(checkpoints.read_document(checkpoint_file), str(checkpoint_file))
               if checkpoint_file is not None else None)
        proof = checkpoints.read_document(proof_file)
        problem = checkpoints.verify_proof(proof, checkpoint_doc=doc, public_key=key, source=str(proof_file))
    if problem:
        _refuse(str(proof_file), problem)
    held = doc or proof.get("checkpoint")
    if held is None:
        against = "no checkpoint given: the root is only as trustworthy as the proof file"
    elif held.get("signature"):
        against = f"the checkpoint of {held['tree_size']} events signed by key " \
                  f"{checkpoints.fingerprint(held['signature']['public_key'])}"
        if key is None:
            against += " (not checked against a trusted key: give --public-key)"
    else:
        against = f"the unsigned checkpoint of {held['tree_size']} events"
    leaf = proof["leaf"]
    payload = {"ok": True, "run_id": leaf["run_id"], "version": leaf["version"], "leaf_index": proof["leaf_index"],
               "tree_size": proof["tree_size"], "root_hash": proof["root_hash"], "against": against}
    emit(as_json, payload, lambda: out.print(
        f"ok: run {visible(leaf['run_id'])} version {leaf['version']} is leaf {proof['leaf_index']} of the tree of "
        f"{proof['tree_size']} events with root {proof['root_hash']}; {against}", markup=False))


__all__ = ["checkpoint_app", "checkpoint_lines"]

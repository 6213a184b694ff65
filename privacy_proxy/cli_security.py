"""Security commands of `privacy-proxy`: certs, vault, access, and audit report/unseal/keygen.

Registered on the main app by cli.py; each command prints errors as one line and exits non-zero.
Nothing here prints a secret except `access new-key`, which shows the new key once, on purpose.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from privacy_proxy.errors import ConfigError
from privacy_proxy.policy.model import Policy

DEFAULT_POLICY = "policies/default.yaml"

certs_app = typer.Typer(no_args_is_help=True, help="TLS certificates for the proxy's HTTPS listener.")
vault_app = typer.Typer(no_args_is_help=True, help="The encrypted vault of long-lived mappings.")
access_app = typer.Typer(no_args_is_help=True, help="Client and admin API keys for the proxy.")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def check_tls_files(policy: Policy) -> None:
    """Load the listener's and the upstream's certificates once, so `serve` stops with a clear message."""
    from privacy_proxy.tls import check_listener_files, upstream_ssl_context

    if policy.server.tls_cert and policy.server.tls_key:
        check_listener_files(policy.server.tls_cert, policy.server.tls_key)
    if policy.upstream.base_url.startswith("https://"):
        upstream_ssl_context(policy.upstream)


# --- certs ---------------------------------------------------------------------------------------------


@certs_app.command("init")
def certs_init(
    directory: Path = typer.Argument(..., help="Where to write ca.pem, ca-key.pem, server.pem, server-key.pem."),
    host: list[str] = typer.Option([], "--host", help="Another DNS name or IP for the server certificate; repeatable."),
    days: int = typer.Option(397, "--days", help="Server certificate lifetime in days."),
    port: int = typer.Option(8787, "--port", help="Port used in the printed examples."),
    force: bool = typer.Option(False, "--force", help="Replace existing files."),
) -> None:
    """Create a local CA and a server certificate (SANs localhost, 127.0.0.1, ::1) and say how to trust it."""
    from privacy_proxy.certs import init_certs, trust_instructions

    try:
        paths = init_certs(directory, hosts=host, days=days, force=force)
    except FileExistsError as exc:
        _fail(str(exc), code=1)
    typer.echo(f"created {paths.ca_cert}, {paths.ca_key}, {paths.server_cert}, {paths.server_key}\n")
    typer.echo(trust_instructions(paths, port))


@certs_app.command("pin")
def certs_pin(file: Path = typer.Argument(..., help="A PEM/DER certificate or PEM public key.")) -> None:
    """Print the SPKI SHA-256 pin of a certificate, for upstream.pins."""
    from privacy_proxy.tls import pin_of_file

    try:
        typer.echo(pin_of_file(file))
    except (OSError, ValueError) as exc:
        _fail(f"{file}: not a certificate or public key ({type(exc).__name__})", code=1)


# --- vault ---------------------------------------------------------------------------------------------


def _open_stored_vault(policy_file: Path):  # type: ignore[no-untyped-def]
    """The policy's vault when it keeps records outside the process (SQLite or Redis); never creates a key."""
    from privacy_proxy.policy.loader import load_policy
    from privacy_proxy.vault import VaultError, open_vault
    from privacy_proxy.vault_sqlite import SQLiteVault, load_keyring

    try:
        settings = load_policy(policy_file).policy.vault
    except ConfigError as exc:
        _fail(exc.message)
    if settings.backend == "memory":
        _fail("vault.backend is memory: nothing is stored outside the proxy process", code=1)
    try:
        if settings.backend == "sqlite":
            keyring = load_keyring(settings.key_env, Path(settings.key_file), create=False)
            return settings, SQLiteVault(Path(settings.path), keyring, default_ttl_s=settings.ttl)
        return settings, open_vault(settings)
    except VaultError as exc:
        _fail(str(exc), code=1)


@vault_app.command("rotate")
def vault_rotate(
    policy: Path = typer.Option(DEFAULT_POLICY, "--policy", help="Policy YAML file (its vault: section)."),
    drop_old: bool = typer.Option(False, "--drop-old", help="Then remove keys no record uses (stop the proxy first)."),
) -> None:
    """Add a new key (key file) and re-encrypt every record under the newest key; old keys still decrypt.

    With the key in an environment variable, put the new key last in it first; this then re-encrypts.
    """
    import os

    from privacy_proxy.vault import VaultError
    from privacy_proxy.vault_sqlite import add_key_to_file, load_keyring, write_key_file

    settings, vault = _open_stored_vault(policy)
    vault.close()
    from_env = bool(os.environ.get(settings.key_env, "").strip())
    if not from_env:
        new_id = add_key_to_file(Path(settings.key_file))
        typer.echo(f"added key {new_id} to {settings.key_file}")
    settings, vault = _open_stored_vault(policy)
    try:
        moved = vault.reencrypt()
        in_use = vault.key_ids_in_use()
    except VaultError as exc:
        _fail(f"re-encryption stopped, nothing changed: {exc}", code=1)
    finally:
        vault.close()
    typer.echo(f"re-encrypted {moved} records under key {vault.keyring.current_id}")
    if drop_old:
        if from_env:
            _fail(f"the keys come from ${settings.key_env}: remove the old ones there", code=1)
        keyring = load_keyring(None, Path(settings.key_file), create=False)
        keep = [keyring.keys[k] for k in keyring.keys if k in in_use or k == keyring.current_id]
        write_key_file(Path(settings.key_file), keep)
        typer.echo(f"kept {len(keep)} key(s) in {settings.key_file}")


@vault_app.command("purge")
def vault_purge(policy: Path = typer.Option(DEFAULT_POLICY, "--policy", help="Policy YAML file.")) -> None:
    """Remove expired records now (the proxy also does this as it runs)."""
    _, vault = _open_stored_vault(policy)
    try:
        typer.echo(f"purged {vault.purge_expired()} expired records")
    finally:
        vault.close()


# --- access --------------------------------------------------------------------------------------------


@access_app.command("new-key")
def access_new_key(
    name: str = typer.Option("client", "--name", help="A name for the key (audit records carry it)."),
    policy: Optional[str] = typer.Option(None, "--policy", help="A policy file for this key's requests."),
    admin: bool = typer.Option(False, "--admin", help="An admin key (for access.admin_key_hash)."),
) -> None:
    """Make a random key; print it once, and the line to put in the policy (only the hash is stored)."""
    from privacy_proxy.access import hash_key, new_key

    key = new_key()
    typer.echo(f"key (give it to the client; it is not stored anywhere): {key}", err=True)
    if admin:
        typer.echo(f'admin_key_hash: "{hash_key(key)}"')
    else:
        entry = {"name": name, "hash": hash_key(key), **({"policy": policy} if policy else {})}
        typer.echo("- " + json.dumps(entry))


@access_app.command("hash-key")
def access_hash_key() -> None:
    """Read a key from standard input; print its sha256: hash for the policy."""
    from privacy_proxy.access import hash_key

    key = sys.stdin.readline().strip()
    if not key:
        _fail("no key on standard input", code=1)
    typer.echo(hash_key(key))


# --- audit report / unseal / keygen --------------------------------------------------------------------


def _audit_report(
    log: Path = typer.Argument(..., help="Audit log; rotated files are included."),
    format: str = typer.Option("text", "--format", help="text, json or html."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write here instead of standard output."),
) -> None:
    """Requests by decision and strategy, entities by type, blocks, policy versions, over time."""
    from privacy_proxy.audit_report import build_report, render_html, render_text

    if format not in ("text", "json", "html"):
        _fail("--format is text, json or html", code=2)
    if not log.exists() and not log.parent.exists():
        _fail(f"{log}: no such log", code=1)
    report = build_report(log)
    text = {"text": render_text, "html": render_html}.get(format, lambda r: json.dumps(r, indent=2) + "\n")(report)
    if out:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)
    else:
        sys.stdout.write(text)


def _audit_unseal(
    log: Path = typer.Argument(..., help="Audit log with sealed originals."),
    private_key: Path = typer.Option(..., "--private-key", help="The auditor's X25519 private key (PEM)."),
    request_id: Optional[str] = typer.Option(None, "--request-id", help="Only this request."),
) -> None:
    """For investigators: open the sealed originals (JSON lines: seq, request_id, time, originals)."""
    from privacy_proxy.audit_crypto import SealError, load_seal_private_key, unseal
    from privacy_proxy.audit_verify import iter_records

    try:
        key = load_seal_private_key(private_key)
    except SealError as exc:
        _fail(str(exc), code=2)
    opened = failed = 0
    for _, _, record in iter_records(log):
        if "sealed" not in record or (request_id and record.get("request_id") != request_id):
            continue
        try:
            originals = unseal(record["sealed"], key, aad=str(record.get("request_id")))
        except SealError as exc:
            failed += 1
            typer.echo(f"seq {record.get('seq')}: {exc}", err=True)
            continue
        opened += 1
        sys.stdout.write(json.dumps({"seq": record.get("seq"), "request_id": record.get("request_id"),
                                     "time": record.get("time"), "originals": originals}, ensure_ascii=False) + "\n")
    typer.echo(f"opened {opened} sealed record(s)" + (f", {failed} could not be opened" if failed else ""), err=True)
    if failed or (request_id and not opened):
        raise typer.Exit(1)


def _audit_keygen(
    kind: str = typer.Argument(..., help="seal (auditor's X25519 pair) or sign (checkpoint Ed25519 pair)."),
    directory: Path = typer.Argument(..., help="Where to write the .key (0600) and .pub files."),
) -> None:
    """Make a key pair: `seal` for audit.seal_to (keep the .key with the investigators, not on the proxy),
    `sign` for audit.signing_key_file (give the .pub to verifiers)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    from privacy_proxy.audit_crypto import write_keypair

    if kind not in ("seal", "sign"):
        _fail("KIND is seal or sign", code=2)
    name = "auditor-seal.key" if kind == "seal" else "audit-signing.key"
    key = X25519PrivateKey.generate() if kind == "seal" else Ed25519PrivateKey.generate()
    try:
        public = write_keypair(directory / name, key)
    except FileExistsError:
        _fail(f"{directory / name} exists", code=1)
    typer.echo(f"private key: {directory / name}\npublic key:  {public}")


def register(app: typer.Typer, audit_app: typer.Typer) -> None:
    app.add_typer(certs_app, name="certs")
    app.add_typer(vault_app, name="vault")
    app.add_typer(access_app, name="access")
    audit_app.command("report")(_audit_report)
    audit_app.command("unseal")(_audit_unseal)
    audit_app.command("keygen")(_audit_keygen)

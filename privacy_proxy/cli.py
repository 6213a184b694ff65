"""`privacy-proxy` command line: serve, scan, policy validate, audit verify/report/unseal/keygen,
certs, vault and access (the last ones live in cli_security.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer

from privacy_proxy.errors import ConfigError

DEFAULT_POLICY = "policies/default.yaml"

app = typer.Typer(add_completion=False, no_args_is_help=True, help="A privacy proxy for OpenAI-style APIs.")
policy_app = typer.Typer(no_args_is_help=True, help="Work with policy files.")
audit_app = typer.Typer(no_args_is_help=True, help="Work with audit logs.")
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")


def _fail(message: str, code: int = 2) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


@app.command()
def serve(
    policy: Path = typer.Option(DEFAULT_POLICY, "--policy", help="Policy YAML file."),
    host: Optional[str] = typer.Option(None, help="Listen address (overrides server.host)."),
    port: Optional[int] = typer.Option(None, help="Listen port (overrides server.port)."),
    upstream: Optional[str] = typer.Option(None, help="Upstream base URL including /v1 (overrides upstream.base_url)."),
    audit_log: Optional[str] = typer.Option(None, "--audit-log", help="Audit log path (default audit/audit.jsonl)."),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
    tls_cert: Optional[str] = typer.Option(None, "--tls-cert", help="Serve HTTPS with this PEM certificate (server.tls_cert)."),
    tls_key: Optional[str] = typer.Option(None, "--tls-key", help="The certificate's PEM private key (server.tls_key)."),
    log_format: Optional[str] = typer.Option(
        None, "--log-format", help="text, or json: one JSON object per line with the request id (server.log_format)."
    ),
) -> None:
    """Run the proxy. SIGHUP re-reads the policy; a broken new policy is refused and the old one kept."""
    import uvicorn

    from privacy_proxy import telemetry
    from privacy_proxy.app import create_app
    from privacy_proxy.logs import configure_logging
    from privacy_proxy.state import Overrides, ProxyState

    if log_format not in (None, "text", "json"):
        _fail(f"--log-format: {log_format!r} is not text or json")
    # Until the policy is read: the flag's format, else text. Library chatter is quietened in there.
    configure_logging(log_level, log_format or "text")
    try:
        overrides = Overrides(host=host, port=port, upstream=upstream, audit_log=audit_log, tls_cert=tls_cert, tls_key=tls_key)
        state = ProxyState(policy, overrides)
        from privacy_proxy.cli_security import check_tls_files

        check_tls_files(state.policy)
    except ConfigError as exc:
        _fail(exc.message)
    server = state.policy.server
    if log_format is None and server.log_format != "text":
        configure_logging(log_level, server.log_format)
    telemetry.configure_from_env()  # OTEL_TRACES_EXPORTER=otlp|console turns tracing on; off by default
    scheme = "https" if server.tls_cert else "http"
    config = uvicorn.Config(
        create_app(state),
        host=server.host,
        port=server.port,
        log_level=log_level,
        log_config=None,  # uvicorn's loggers go through the root handler set up above (text or JSON)
        access_log=False,  # one value-free line per request comes from the proxy itself
        server_header=False,
        lifespan="on",
        ssl_certfile=server.tls_cert,
        ssl_keyfile=server.tls_key,
    )
    typer.echo(f"privacy-proxy: policy {state.policy.name}, listening on {scheme}://{server.host}:{server.port}/v1", err=True)
    uvicorn.Server(config).run()
    if state.fatal:
        _fail(f"privacy-proxy: {state.fatal}")


@app.command()
def scan(
    input: Optional[Path] = typer.Argument(None, help="JSONL file; standard input when absent."),
    policy: Path = typer.Option(DEFAULT_POLICY, "--policy", help="Policy YAML file."),
    explain: bool = typer.Option(False, "--explain", help="Add the decision trace (rule, threshold, outcome)."),
    engine: str = typer.Option("local", "--engine", help="local (this process) or ray (a Ray cluster; extra [ray])."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address; a private local Ray when absent."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Ray actors (default: CPUs of the node or cluster)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here, checkpointed in FILE.progress."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted --output run after its last line."),
    batch_size: int = typer.Option(64, "--batch-size", help="Input lines per batch (and per checkpoint)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Scan JSONL texts or conversations offline: what would leave the machine, and why."""
    from privacy_proxy.scan_batch import ScanOptions, run_scan

    options = ScanOptions(
        policy=policy, input=input, output=output, resume=resume, engine=engine, address=address, workers=workers,
        batch_size=batch_size, explain=explain, progress=not quiet and sys.stderr.isatty(),
    )
    try:
        run_scan(options, sys.stdin, sys.stdout)
    except ConfigError as exc:
        _fail(exc.message)
    except OSError as exc:  # unreadable input, unwritable output: say what, without a traceback
        _fail(f"scan: {exc}")


@policy_app.command("validate")
def policy_validate(file: Path = typer.Argument(..., help="Policy YAML file.")) -> None:
    """Exit 0 if the policy is valid; otherwise print each error with file:line:column and field."""
    from privacy_proxy.policy.loader import load_policy

    try:
        loaded = load_policy(file)
    except ConfigError as exc:
        _fail(exc.message, code=1)
    typer.echo(f"{file}: ok (policy {loaded.policy.name}, {len(loaded.policy.rules)} rules, sha256 {loaded.sha256})")


@audit_app.command("verify")
def audit_verify(
    log: Path = typer.Argument(..., help="Audit log (JSON lines); rotated files are found through it."),
    key_file: Optional[Path] = typer.Option(None, "--key-file", help="HMAC key file (default audit/audit.key)."),
    key_env: str = typer.Option("PRIVACY_PROXY_AUDIT_KEY", "--key-env", help="Env var holding the HMAC key."),
    no_key: bool = typer.Option(False, "--no-key", help="Check hashes and chain only, not the HMACs."),
    public_key: list[Path] = typer.Option(
        [], "--public-key", help="Ed25519 public key (PEM) that signs the checkpoints; repeatable. "
        "With it, no HMAC key is needed.",
    ),
) -> None:
    """Exit 0 if the log is intact; otherwise name the first bad record (file:line: reason)."""
    from privacy_proxy.audit import AuditError, load_or_create_key, verify_log
    from privacy_proxy.audit_crypto import SealError, load_public_keys

    public_keys = None
    if public_key:
        try:
            public_keys = load_public_keys(public_key)
        except SealError as exc:
            _fail(str(exc), code=2)
    key = None
    if not no_key:
        path = key_file or Path("audit/audit.key")
        if not os.environ.get(key_env) and not path.exists():
            if public_keys is None:
                _fail(f"no HMAC key: set {key_env}, pass --key-file, use --public-key, or use --no-key", code=2)
        else:
            try:
                key = load_or_create_key(key_env, path)
            except AuditError as exc:
                _fail(str(exc), code=2)
    result = verify_log(log, key, public_keys=public_keys)
    if result.ok:
        typer.echo(f"{log}: intact, {result.records} records ({result.reason})")
        return
    where = result.file or log
    line = f":{result.first_bad_line}" if result.first_bad_line is not None else ""
    _fail(f"{where}{line}: {result.reason} (after {result.records} good records)", code=1)


def _register_security_commands() -> None:
    from privacy_proxy.cli_security import register

    register(app, audit_app)


_register_security_commands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()

"""deploy/: the Dockerfile, compose.yaml, the Kubernetes manifests and the systemd unit agree with each other
and with the code (images, ports, probes, the policy path, env var names, secrets, non-root, egress). Docker
cannot run here, so the container's entrypoint command itself is run on the host against the fake upstream
and a real Redis."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import pytest
import yaml
from conftest import AUDIT_KEY, NETGUARD_DIR, free_port
from deploy_manifests import (
    DEPLOY,
    EXPANSION,
    ROOT,
    dockerignore_excludes,
    env_vars_read_by_code,
    find,
    k8s_objects,
    parse_dockerfile,
    parse_unit,
    read_dockerignore,
    secrets_needed,
    selects,
    unit_values,
)
from fake_upstream import FakeUpstream
from redis_server import RedisServer

from privacy_proxy.policy.loader import load_policy, parse_policy
from privacy_proxy.policy.model import Policy, ServerSettings

POLICY_PATH = "/etc/privacy-proxy/policy.yaml"
# Read by the Python runtime or libraries (not by our code), set on purpose by the deployment files.
RUNTIME_ENV = {"PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "HF_HUB_OFFLINE"}

DOCKERFILE = parse_dockerfile((DEPLOY / "Dockerfile").read_text())
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
K8S = k8s_objects()
UNIT = parse_unit((DEPLOY / "systemd" / "privacy-proxy.service").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

DEPLOYMENT = find(K8S, "Deployment", "privacy-proxy")
POD = DEPLOYMENT["spec"]["template"]["spec"]
CONTAINER = next(c for c in POD["containers"] if c["name"] == "proxy")
REDIS_DEPLOYMENT = find(K8S, "Deployment", "privacy-proxy-redis")
SECRET = find(K8S, "Secret", "privacy-proxy-secrets")
CONFIGMAP = find(K8S, "ConfigMap", "privacy-proxy-policy")
EMBEDDED_POLICY_TEXT: str = CONFIGMAP["data"]["policy.yaml"]
EMBEDDED_POLICY: Policy = parse_policy(EMBEDDED_POLICY_TEXT, "configmap.yaml")
PROXY_SERVICE = COMPOSE["services"]["proxy"]
ENTRYPOINT = DOCKERFILE.runtime.last("ENTRYPOINT").exec_form()


def option(argv: list[str], name: str) -> str:
    assert argv.count(name) == 1, f"{name} once in {argv}"
    return argv[argv.index(name) + 1]


def container_port(name_or_number: str | int) -> int:
    if isinstance(name_or_number, int):
        return name_or_number
    return next(p["containerPort"] for p in CONTAINER["ports"] if p["name"] == name_or_number)


def healthcheck_port(argv: list[str]) -> int:
    urls = [u for arg in argv for u in re.findall(r"https?://[^'\"\s]+", arg)]
    assert len(urls) == 1 and urlsplit(urls[0]).path == "/healthz", argv
    assert urlsplit(urls[0]).hostname == "127.0.0.1"
    return urlsplit(urls[0]).port


# --- Dockerfile ------------------------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_slim_python_311_non_root() -> None:
    builder, runtime = DOCKERFILE.stages[0], DOCKERFILE.runtime
    assert (builder.name, runtime.name) == ("builder", "runtime") and len(DOCKERFILE.stages) == 2
    assert builder.base == runtime.base and re.fullmatch(r"python:3\.11-slim(-\w+)?", runtime.base)
    assert any("pip wheel" in run.args for run in builder.all("RUN"))
    assert any(c.args.startswith("--from=builder /opt/privacy-proxy /opt/privacy-proxy") for c in runtime.all("COPY"))
    user = runtime.last("USER").args.split(":")
    assert user[0] not in ("0", "root") and all(part.isdigit() and int(part) > 0 for part in user)
    assert f"--uid {user[0]}" in " ".join(run.args for run in runtime.all("RUN"))
    assert runtime.last("WORKDIR").args == "/var/lib/privacy-proxy"
    assert "-o 10001 -g 10001" in runtime.last("RUN").args  # the working and audit dirs belong to the user


def test_torch_only_by_build_arg_and_nothing_fetched_at_run_time() -> None:
    builder, runtime = DOCKERFILE.stages[0], DOCKERFILE.runtime
    args = builder.arg_defaults()
    assert args["WITH_TORCH"] == "false"
    assert f"torch=={args['TORCH_VERSION']}" in PYPROJECT["project"]["optional-dependencies"]["ml"]
    assert args["TORCH_INDEX_URL"].endswith("/whl/cpu")  # the CPU-only wheel
    torch_runs = [run.args for run in builder.all("RUN") if "torch" in run.args]
    assert len(torch_runs) == 1 and 'if [ "$WITH_TORCH" = "true" ]' in torch_runs[0]
    # The runtime stage installs and downloads nothing; the models come inside the package.
    for run in runtime.all("RUN"):
        assert not re.search(r"\b(pip|curl|wget|apt-get|huggingface|spacy download)\b", run.args), run.args
    assert runtime.env()["HF_HUB_OFFLINE"] == "1"
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]["sanitizers"]
    models = [p.relative_to(ROOT / "sanitizers") for p in (ROOT / "sanitizers/ner/models").rglob("*") if p.is_file()]
    assert models and all(any(m.match(pattern) for pattern in package_data) for m in models)


def test_dockerfile_port_healthcheck_and_entrypoint() -> None:
    runtime = DOCKERFILE.runtime
    port = ServerSettings().port
    assert runtime.last("EXPOSE").args == f"{port}" == str(EMBEDDED_POLICY.server.port)
    check = runtime.last("HEALTHCHECK").exec_form()
    assert check[0] == "python" and "curl" not in " ".join(check) and healthcheck_port(check) == port
    assert ENTRYPOINT == ["privacy-proxy", "serve", "--policy", POLICY_PATH, "--host", "0.0.0.0"]
    assert not runtime.all("CMD")  # Kubernetes args and `docker run` arguments add to the entrypoint
    assert "privacy-proxy" in PYPROJECT["project"]["scripts"]


def test_dockerignore_keeps_what_the_build_copies_and_drops_state() -> None:
    patterns = read_dockerignore(ROOT / ".dockerignore")
    sources = [c.args.split()[:-1] for stage in DOCKERFILE.stages for c in stage.all("COPY")
               if not c.args.startswith("--from")]
    copied = [s for group in sources for s in group]
    assert copied and all((ROOT / s).exists() for s in copied)
    model = next((ROOT / "sanitizers/ner/models").rglob("model.onnx")).relative_to(ROOT).as_posix()
    for kept in [*copied, model, "sanitizers/ner/data/nrp.txt", "privacy_proxy/vault_redis.py"]:
        assert not dockerignore_excludes(patterns, kept), kept
    for dropped in [".venv/bin/python", ".git/HEAD", "audit/audit.jsonl", "vault/vault.key", "deploy/.env",
                    "privacy_proxy/__pycache__/cli.cpython-311.pyc", "tests/conftest.py"]:
        assert dockerignore_excludes(patterns, dropped), dropped


# --- the policy the containers serve ------------------------------------------------------------------------


def test_configmap_policy_is_deploy_policy_yaml_and_validates(tmp_path: Path) -> None:
    assert EMBEDDED_POLICY_TEXT == (DEPLOY / "policy.yaml").read_text()
    path = tmp_path / "policy.yaml"
    path.write_text(EMBEDDED_POLICY_TEXT)
    result = subprocess.run([sys.executable, "-m", "privacy_proxy.cli", "policy", "validate", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "ok (policy deploy" in result.stdout
    policy = EMBEDDED_POLICY
    assert policy.vault.backend == "redis" and policy.vault.redis_url is None  # the URL (with password) is env
    assert policy.upstream.base_url.startswith("https://")
    # Key files point into the read-only policy mount: a key missing from the environment stops start-up
    # instead of each replica quietly making its own.
    for key_file in (policy.audit.hmac_key_file, policy.audit.signing_key_file, policy.vault.key_file):
        assert key_file.startswith("/etc/privacy-proxy/")


def test_policy_path_is_mounted_where_the_entrypoint_reads_it() -> None:
    policy_path = option(ENTRYPOINT, "--policy")
    mounts = {m["name"]: m for m in CONTAINER["volumeMounts"]}
    volume = next(v for v in POD["volumes"] if "configMap" in v)
    assert volume["configMap"]["name"] == CONFIGMAP["metadata"]["name"] and mounts[volume["name"]]["readOnly"]
    item = volume["configMap"]["items"][0]
    assert "subPath" not in mounts[volume["name"]]  # a subPath mount would never see ConfigMap edits
    assert f"{mounts[volume['name']]['mountPath']}/{item['path']}" == policy_path and item["key"] == "policy.yaml"
    binds = [v for v in PROXY_SERVICE["volumes"] if v["target"] == policy_path]
    assert len(binds) == 1 and binds[0]["read_only"] and (DEPLOY / binds[0]["source"]).resolve() == DEPLOY / "policy.yaml"
    exec_start = unit_values(UNIT, "Service", "ExecStart")[0].split()
    assert option(exec_start, "--policy") == policy_path
    assert unit_values(UNIT, "Service", "ConfigurationDirectory") == ["privacy-proxy"]  # /etc/privacy-proxy


# --- images, ports and probes ---------------------------------------------------------------------------------


def test_images_agree_and_are_pinned() -> None:
    version = PYPROJECT["project"]["version"]
    assert CONTAINER["image"] == PROXY_SERVICE["image"] == f"privacy-proxy:{version}"
    assert PROXY_SERVICE["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile", "args": {"WITH_TORCH": "false"}}
    redis_images = {c["image"] for c in REDIS_DEPLOYMENT["spec"]["template"]["spec"]["containers"]}
    assert redis_images == {COMPOSE["services"]["redis"]["image"]}
    images = [s["image"] for s in COMPOSE["services"].values()]
    images += [c["image"] for o in K8S if o["kind"] == "Deployment" for c in o["spec"]["template"]["spec"]["containers"]]
    for image in images:
        tag = image.rpartition(":")[2]
        assert ":" in image and tag and tag != "latest", image


def test_ports_agree_everywhere() -> None:
    import typer

    from privacy_proxy.cli import app

    serve = typer.main.get_command(app).commands["serve"]
    [port_option] = [p for p in serve.params if p.name == "port"]
    assert port_option.default is None  # `serve` without --port listens on the policy's server.port
    port = ServerSettings().port
    assert EMBEDDED_POLICY.server.port == port == 8787
    assert container_port("http") == port
    service = find(K8S, "Service", "privacy-proxy")
    [service_port] = service["spec"]["ports"]
    assert service_port["port"] == port and container_port(service_port["targetPort"]) == port
    assert selects(service["spec"]["selector"], DEPLOYMENT["spec"]["template"]["metadata"]["labels"])
    assert not selects(service["spec"]["selector"], REDIS_DEPLOYMENT["spec"]["template"]["metadata"]["labels"])
    assert PROXY_SERVICE["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert healthcheck_port(PROXY_SERVICE["healthcheck"]["test"]) == port


def test_probes_hit_healthz_on_the_served_port() -> None:
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = CONTAINER[probe]["httpGet"]
        assert get["path"] == "/healthz" and container_port(get["port"]) == ServerSettings().port, probe
    # Start-up (model loading) gets its own budget, so liveness never kills a pod that is still loading.
    startup = CONTAINER["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60
    resources = CONTAINER["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"]) and {"cpu", "memory"} <= set(resources["limits"])


# --- env names and secrets ------------------------------------------------------------------------------------


def k8s_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["name"]: entry for entry in container.get("env", [])}


def test_k8s_env_names_are_read_by_the_code_and_secrets_are_provided() -> None:
    known = env_vars_read_by_code(Policy(name="defaults"), EMBEDDED_POLICY)
    env = k8s_env(CONTAINER)
    referenced = {name for text in [*CONTAINER.get("args", []), *(e.get("value", "") for e in env.values())]
                  for name in EXPANSION.findall(text)}
    for name in env:
        # Otherwise only there to be expanded into another value or an argument ($(POD_NAME), $(REDIS_PASSWORD)).
        assert name in known or name in referenced, f"{name} is read by nothing"
    assert referenced <= set(env)
    from_secret = {name for name, e in env.items() if "secretKeyRef" in e.get("valueFrom", {})}
    provided = from_secret | {name for name, e in env.items()
                              if set(EXPANSION.findall(e.get("value", ""))) & from_secret}
    assert secrets_needed(EMBEDDED_POLICY) <= provided
    assert secrets_needed(EMBEDDED_POLICY) == {
        "OPENAI_API_KEY", "PRIVACY_PROXY_AUDIT_KEY", "PRIVACY_PROXY_AUDIT_SIGNING_KEY", "PRIVACY_PROXY_VAULT_KEY",
        "PRIVACY_PROXY_REDIS_URL",
    }
    for deployment in (DEPLOYMENT, REDIS_DEPLOYMENT):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for entry in k8s_env(container).values():
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == SECRET["metadata"]["name"] and ref["key"] in SECRET["stringData"]
    assert all(value == "" for value in SECRET["stringData"].values())  # no secret is committed


def test_redis_url_points_at_the_redis_service() -> None:
    url = k8s_env(CONTAINER)["PRIVACY_PROXY_REDIS_URL"]["value"]
    parts = urlsplit(url)
    service = find(K8S, "Service", "privacy-proxy-redis")
    [port] = service["spec"]["ports"]
    assert (parts.scheme, parts.hostname, parts.port) == ("redis", service["metadata"]["name"], port["port"])
    assert parts.password == "$(REDIS_PASSWORD)"
    redis_container = REDIS_DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]
    assert option(redis_container["args"], "--requirepass") == "$(REDIS_PASSWORD)"
    assert redis_container["ports"][0]["containerPort"] == port["port"]
    assert selects(service["spec"]["selector"], REDIS_DEPLOYMENT["spec"]["template"]["metadata"]["labels"])
    compose_value = PROXY_SERVICE["environment"]["PRIVACY_PROXY_REDIS_URL"]
    compose_url = urlsplit(re.sub(r"\$\{\w+(:\?[^}]*)?\}", "password", compose_value))
    assert (compose_url.hostname, compose_url.port) == ("redis", 6379) and "redis" in COMPOSE["services"]


def test_compose_env_names_are_read_by_the_code_and_secrets_are_required() -> None:
    known = env_vars_read_by_code(Policy(name="defaults"), EMBEDDED_POLICY)
    environment = PROXY_SERVICE["environment"]
    assert set(environment) <= known
    needed = secrets_needed(EMBEDDED_POLICY)
    assert needed <= set(environment)
    for name in needed:  # each comes from deploy/.env and compose refuses to start without it
        assert re.search(r"\$\{\w+:\?", environment[name]), name
    example = [line.split("=", 1)[0] for line in (DEPLOY / "env.example").read_text().splitlines()
               if line and not line.startswith("#")]
    interpolated = {name for text in environment.values() for name in re.findall(r"\$\{(\w+):\?", text)}
    assert set(example) == interpolated
    assert set(DOCKERFILE.runtime.env()) <= known | RUNTIME_ENV


def test_compose_services_volumes_and_healthchecks() -> None:
    services = COMPOSE["services"]
    assert PROXY_SERVICE["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert "healthcheck" in services["redis"] and "healthcheck" in PROXY_SERVICE
    assert services["slm"]["profiles"] == ["slm"] and "slm" not in PROXY_SERVICE["depends_on"]
    assert "profiles" not in PROXY_SERVICE and "profiles" not in services["redis"]
    audit_dir = str(Path(EMBEDDED_POLICY.audit.path).parent)
    volumes = {v["target"]: v for v in PROXY_SERVICE["volumes"]}
    assert volumes[audit_dir]["type"] == "volume" and volumes[audit_dir]["source"] in COMPOSE["volumes"]
    redis_data = {v["target"]: v for v in services["redis"]["volumes"]}["/data"]
    assert redis_data["source"] in COMPOSE["volumes"]
    assert COMPOSE["networks"]["backend"]["internal"] is True
    assert services["redis"]["networks"] == ["backend"] and services["slm"]["networks"] == ["backend"]
    assert all(not port.startswith(("0.0.0.0", "8787")) for port in PROXY_SERVICE["ports"])  # host loopback only


def test_systemd_env_file_names_are_read_by_the_code() -> None:
    default_policy = load_policy(ROOT / "policies/default.yaml").policy
    known = env_vars_read_by_code(Policy(name="defaults"), default_policy)
    lines = (DEPLOY / "systemd" / "privacy-proxy.env.example").read_text().splitlines()
    set_names = [line.split("=", 1)[0] for line in lines if re.match(r"^[A-Z_]+=", line)]
    commented = [line[1:].split("=", 1)[0] for line in lines if re.match(r"^#[A-Z_]+=", line)]
    assert set_names == ["OPENAI_API_KEY"] and set(set_names + commented) <= known
    assert secrets_needed(default_policy) <= set(set_names + commented)
    environment = {item.split("=", 1)[0] for value in unit_values(UNIT, "Service", "Environment") for item in value.split()}
    assert environment <= known | RUNTIME_ENV


# --- non-root everywhere; the sandbox ---------------------------------------------------------------------


def test_k8s_pods_run_non_root_read_only_without_capabilities() -> None:
    for deployment in (DEPLOYMENT, REDIS_DEPLOYMENT):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True and context["runAsUser"] > 0
            assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
    assert POD["securityContext"]["runAsUser"] == int(DOCKERFILE.runtime.last("USER").args.split(":")[0])
    # The read-only root leaves two writable places: the audit volume and /tmp.
    writable = {m["mountPath"]: m for m in CONTAINER["volumeMounts"] if not m.get("readOnly")}
    volumes = {v["name"]: v for v in POD["volumes"]}
    assert set(writable) == {"/var/lib/privacy-proxy/audit", "/tmp"}
    for mount in writable.values():
        assert {"emptyDir", "persistentVolumeClaim"} & set(volumes[mount["name"]])
    audit_log = option(CONTAINER["args"], "--audit-log")
    assert audit_log.startswith("/var/lib/privacy-proxy/audit/$(POD_NAME)/")  # one log per pod


def test_compose_services_run_non_root_read_only() -> None:
    for name, service in COMPOSE["services"].items():
        uid = str(service["user"]).split(":")[0]
        assert uid.isdigit() and int(uid) > 0, name
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
    assert PROXY_SERVICE["user"] == DOCKERFILE.runtime.last("USER").args


def test_systemd_unit_is_hardened() -> None:
    def value(key: str) -> str:
        values = unit_values(UNIT, "Service", key)
        assert len(values) == 1, key
        return values[0]

    assert value("DynamicUser") == "yes" and not unit_values(UNIT, "Service", "User")
    for key, expected in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                          "PrivateTmp": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
                          "StateDirectory": "privacy-proxy", "WorkingDirectory": "/var/lib/privacy-proxy",
                          "ExecReload": "/bin/kill -HUP $MAINPID"}.items():
        assert value(key) == expected, key
    assert set(value("RestrictAddressFamilies").split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    filters = unit_values(UNIT, "Service", "SystemCallFilter")
    assert "@system-service" in filters and any(f.startswith("~") for f in filters)
    assert value("EnvironmentFile").startswith("/etc/privacy-proxy/")
    exec_start = value("ExecStart").split()
    assert exec_start[:2] == ["/opt/privacy-proxy/bin/privacy-proxy", "serve"]


def test_systemd_analyze_accepts_the_unit(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    text = (DEPLOY / "systemd" / "privacy-proxy.service").read_text()
    env_file = tmp_path / "privacy-proxy.env"
    env_file.write_text("OPENAI_API_KEY=sk-test\n")
    text = text.replace("/opt/privacy-proxy/bin/privacy-proxy", str(Path(sys.executable).parent / "privacy-proxy"))
    text = text.replace("EnvironmentFile=/etc/privacy-proxy/privacy-proxy.env", f"EnvironmentFile={env_file}")
    unit = tmp_path / "privacy-proxy.service"
    unit.write_text(text)
    verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and "Unknown" not in verify.stderr, verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                              capture_output=True, text=True, timeout=60)
    if security.returncode != 0 and "offline" in security.stderr:
        return  # systemd older than 250: no offline security report
    level = re.search(r"Overall exposure level for \S+: ([0-9.]+)", security.stdout)
    assert level and float(level.group(1)) <= 2.0, security.stdout[-2000:]


# --- network policy, autoscaling --------------------------------------------------------------------------------


def test_network_policy_allows_egress_only_to_dns_upstream_and_redis() -> None:
    policy = find(K8S, "NetworkPolicy", "privacy-proxy")["spec"]
    assert selects(policy["podSelector"]["matchLabels"], DEPLOYMENT["spec"]["template"]["metadata"]["labels"])
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == [ServerSettings().port]
    upstream = urlsplit(EMBEDDED_POLICY.upstream.base_url)
    upstream_port = upstream.port or (443 if upstream.scheme == "https" else 80)
    redis_labels = REDIS_DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    kinds = []
    for rule in policy["egress"]:
        assert rule.get("to") and rule.get("ports"), "a rule without `to` or `ports` allows everything"
        ports = {(p["protocol"], p["port"]) for p in rule["ports"]}
        if ports == {("UDP", 53), ("TCP", 53)}:
            [peer] = rule["to"]
            assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
            assert peer["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
            kinds.append("dns")
        elif ports == {("TCP", upstream_port)}:
            for peer in rule["to"]:
                assert set(peer) == {"ipBlock"}
                excepted = [ipaddress.ip_network(n) for n in peer["ipBlock"]["except"]]
                private = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]
                if ipaddress.ip_network(peer["ipBlock"]["cidr"]).version == 4:
                    assert all(ipaddress.ip_network(n) in excepted for n in private)
                else:
                    assert ipaddress.ip_network("fc00::/7") in excepted
            kinds.append("upstream")
        elif ports == {("TCP", 6379)}:
            [peer] = rule["to"]
            assert set(peer) == {"podSelector"} and selects(peer["podSelector"]["matchLabels"], redis_labels)
            assert not selects(peer["podSelector"]["matchLabels"], DEPLOYMENT["spec"]["template"]["metadata"]["labels"])
            kinds.append("redis")
        else:
            raise AssertionError(f"unexpected egress rule {rule}")
    assert sorted(kinds) == ["dns", "redis", "upstream"]
    redis_policy = find(K8S, "NetworkPolicy", "privacy-proxy-redis")["spec"]
    assert selects(redis_policy["podSelector"]["matchLabels"], redis_labels)
    assert redis_policy["egress"] == [] and "Egress" in redis_policy["policyTypes"]
    [ingress] = redis_policy["ingress"]
    assert selects(ingress["from"][0]["podSelector"]["matchLabels"], DEPLOYMENT["spec"]["template"]["metadata"]["labels"])


def test_autoscaler_pdb_and_kustomization() -> None:
    hpa = find(K8S, "HorizontalPodAutoscaler", "privacy-proxy")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "privacy-proxy"}
    assert 2 <= hpa["minReplicas"] < hpa["maxReplicas"]
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    pdb = find(K8S, "PodDisruptionBudget", "privacy-proxy")["spec"]
    assert selects(pdb["selector"]["matchLabels"], DEPLOYMENT["spec"]["template"]["metadata"]["labels"])
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    if shutil.which("kubectl"):
        built = subprocess.run(["kubectl", "kustomize", str(DEPLOY / "k8s")], capture_output=True, text=True,
                               timeout=60)
        assert built.returncode == 0, built.stderr
        assert len([d for d in yaml.safe_load_all(built.stdout) if d]) == len(K8S)


# --- the entrypoint, run on the host ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), password="0123456789abcdef0123456789abcdef")
    yield server
    server.stop()


def test_container_entrypoint_serves_on_the_host(
    tmp_path: Path, redis_server: RedisServer, upstream_server: FakeUpstream
) -> None:
    """Exactly the container's command (image entrypoint + the Deployment's args, its env from a filled-in
    Secret), with container paths under a temp dir, a free port, the fake upstream and a real Redis."""
    root = tmp_path / "container"

    def on_host(text: str) -> str:
        for prefix in ("/etc/privacy-proxy", "/var/lib/privacy-proxy"):
            text = text.replace(prefix, f"{root}{prefix}")
        return text

    policy_file = Path(on_host(POLICY_PATH))
    policy_file.parent.mkdir(parents=True)
    policy_file.write_text(on_host(EMBEDDED_POLICY_TEXT))
    workdir = Path(on_host(DOCKERFILE.runtime.last("WORKDIR").args))
    workdir.mkdir(parents=True)
    secrets = {"OPENAI_API_KEY": "sk-upstream-secret", "PRIVACY_PROXY_AUDIT_KEY": AUDIT_KEY,
               "PRIVACY_PROXY_AUDIT_SIGNING_KEY": "5e" * 32, "PRIVACY_PROXY_VAULT_KEY": "c3" * 32,
               "REDIS_PASSWORD": redis_server.password}
    assert set(secrets) == set(SECRET["stringData"])
    env: dict[str, str] = {}
    for name, entry in k8s_env(CONTAINER).items():
        source = entry.get("valueFrom", {})
        if "secretKeyRef" in source:
            env[name] = secrets[source["secretKeyRef"]["key"]]
        elif "fieldRef" in source:
            env[name] = {"metadata.name": "privacy-proxy-5d8c7-abcde"}[source["fieldRef"]["fieldPath"]]
        else:
            env[name] = EXPANSION.sub(lambda m: env[m.group(1)], entry["value"])
    env["PRIVACY_PROXY_REDIS_URL"] = env["PRIVACY_PROXY_REDIS_URL"].replace(
        "@privacy-proxy-redis:6379/", f"@127.0.0.1:{redis_server.port}/")
    args = [on_host(EXPANSION.sub(lambda m: env[m.group(1)], arg)) for arg in CONTAINER["args"]]
    port = free_port()
    argv = [str(Path(sys.executable).parent / ENTRYPOINT[0]), *map(on_host, ENTRYPOINT[1:]), *args,
            "--port", str(port), "--upstream", upstream_server.base_url]
    netguard_log = tmp_path / "netguard.log"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PRIVACY_PROXY_", "OPENAI_"))}
    process_env = {**base, **DOCKERFILE.runtime.env(), "PATH": os.environ["PATH"], **env,
                   "PYTHONPATH": str(NETGUARD_DIR), "PRIVACY_PROXY_NETGUARD": "1",
                   "PRIVACY_PROXY_NETGUARD_LOG": str(netguard_log)}
    log_path = tmp_path / "proxy.log"
    upstream_server.reset()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=workdir, env=process_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        origin = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, f"exited {process.returncode}:\n{log_path.read_text()}"
            try:
                if httpx.get(f"{origin}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        # The image's and compose's health checks, as written, against this port.
        for check in (DOCKERFILE.runtime.last("HEALTHCHECK").exec_form(), PROXY_SERVICE["healthcheck"]["test"][1:]):
            command = [sys.executable if part == "python" else part.replace(":8787/", f":{port}/") for part in check]
            assert subprocess.run(command, timeout=30, env=process_env).returncode == 0
        client = openai.OpenAI(base_url=f"{origin}/v1", api_key="unused", max_retries=0)
        reply = client.responses.create(model="gpt-test", input="Mail Maria Garcia at maria.garcia@example.com.")
        assert reply.output_text == "Mail Maria Garcia at maria.garcia@example.com."
        sent = upstream_server.requests[-1]
        assert "maria" not in sent.body.decode().casefold() and "[EMAIL_ADDRESS_1]" in sent.json["input"]
        assert sent.headers["authorization"] == "Bearer sk-upstream-secret"
        stored = list(redis_server.client().scan_iter(match=f"{EMBEDDED_POLICY.vault.redis_prefix}*"))
        assert stored == [f"{EMBEDDED_POLICY.vault.redis_prefix}responses:{reply.id}".encode()]
        # systemctl reload / kubectl exec kill -HUP: the policy is read again.
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while httpx.get(f"{origin}/healthz", timeout=5).json()["reloads"] < 1:
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        # What the kubelet and systemd send: a graceful shutdown within the grace period. (uvicorn re-raises
        # the signal once it is done, so the status is "killed by SIGTERM", which systemd counts as clean.)
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=POD["terminationGracePeriodSeconds"])
        assert status in (0, -signal.SIGTERM) and "Application shutdown complete" in log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        upstream_server.reset()
    assert not (netguard_log.exists() and netguard_log.read_text()), "the proxy reached outside loopback"
    audit_log = Path(args[args.index("--audit-log") + 1])
    assert audit_log.parent.name == "privacy-proxy-5d8c7-abcde" and audit_log.exists()
    verify = subprocess.run([sys.executable, "-m", "privacy_proxy.cli", "audit", "verify", str(audit_log)],
                            capture_output=True, text=True, timeout=60, env=process_env)
    assert verify.returncode == 0, verify.stderr
    assert not list((root / "etc").rglob("*.key"))  # no key was made: they all came from the Secret

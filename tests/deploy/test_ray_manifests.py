"""The Ray deployment examples in deploy/ (issue 15 item 6) parse, and say what the docs promise: one worker image
everywhere (the Dockerfile's `worker` target), the head's dashboard on loopback, workers and the server joining
the head at the address the head serves, the API token from a secret, one server replica over the shared home."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from partyflow.distributed.settings import BackendSettings

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def containers(pod_template: dict[str, Any]) -> list[dict[str, Any]]:
    return pod_template["spec"]["containers"]


def flags(command: str) -> dict[str, str]:
    """`--name=value` and `--name value` flags of one shell command line."""
    words = shlex.split(command)
    out = {}
    for index, word in enumerate(words):
        if word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            if not eq and index + 1 < len(words) and not words[index + 1].startswith("-"):
                value = words[index + 1]
            out[name] = value
    return out


def test_the_cluster_launcher_config() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((DEPLOY / "ray" / "cluster.yaml").read_text(encoding="utf-8"))
    validate_config(prepare_config(config))  # Ray's own schema for cluster launcher configs, defaults filled in
    assert config["provider"]["type"] == "local"
    assert config["max_workers"] == len(config["provider"]["worker_ips"])
    assert config["docker"]["image"].rpartition("/")[2].startswith("partyflow-worker:")
    head = [c for c in config["head_start_ray_commands"] if c.startswith("ray start")]
    workers = [c for c in config["worker_start_ray_commands"] if c.startswith("ray start")]
    assert len(head) == len(workers) == 1
    head_flags, worker_flags = flags(head[0]), flags(workers[0])
    assert "head" in head_flags and head_flags["port"] == "6379"
    assert head_flags["dashboard-host"] == "127.0.0.1"  # the dashboard has no authentication
    assert worker_flags["address"] == f"$RAY_HEAD_IP:{head_flags['port']}"
    assert any("/data" in option for option in config["docker"]["run_options"])  # the shared home


def test_the_kuberay_manifests() -> None:
    docs = load_all(DEPLOY / "kuberay" / "raycluster.yaml") + load_all(DEPLOY / "kuberay" / "server.yaml")
    kinds = {doc["kind"]: doc for doc in docs}
    assert sorted(kinds) == ["Deployment", "PersistentVolumeClaim", "RayCluster", "Service"]
    cluster, deployment, service, claim = (kinds[k] for k in ("RayCluster", "Deployment", "Service",
                                                               "PersistentVolumeClaim"))
    assert cluster["apiVersion"] == "ray.io/v1"
    head = cluster["spec"]["headGroupSpec"]
    groups = cluster["spec"]["workerGroupSpecs"]
    pods = [head["template"], *(g["template"] for g in groups), deployment["spec"]["template"]]
    images = {c["image"] for pod in pods for c in containers(pod)}
    assert len(images) == 1 and images.pop().rpartition("/")[2].startswith("partyflow-worker:")  # one Ray version
    for pod in pods:  # every pod sees the same home, as the server does
        assert {"claimName": claim["metadata"]["name"]} in [v.get("persistentVolumeClaim") for v in pod["spec"]["volumes"]]
        assert any(m["mountPath"] == "/data" for c in containers(pod) for m in c["volumeMounts"])
    assert head["rayStartParams"]["dashboard-host"] == "127.0.0.1" and head["rayStartParams"]["num-cpus"] == "0"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert any(g["rayStartParams"].get("num-gpus") == "1" for g in groups)

    # the server joins the head's service as a Ray node that takes no work, then serves as a Ray driver
    server = containers(deployment["spec"]["template"])[0]
    lines = [line.strip() for line in "\n".join(server["args"]).splitlines()]
    ray_start = next(line for line in lines if line.startswith("ray start"))
    serve = next(line for line in lines if line.startswith("exec partyflow"))
    start_flags = flags(ray_start)
    assert "block" in start_flags and lines[0].startswith("(while true")  # rejoins after a head restart
    assert start_flags["address"] == f"{cluster['metadata']['name']}-head-svc:6379"  # KubeRay's head service
    assert start_flags["num-cpus"] == "0"
    assert serve.split()[:2] == ["exec", "partyflow"] and flags(serve)["listen"] == "0.0.0.0"
    env = {e["name"]: e for e in server["env"]}
    settings = BackendSettings.from_raw({}, env={k: e["value"] for k, e in env.items() if "value" in e})
    assert settings.backend == "ray" and settings.ray_address == "auto" and settings.worker_cpus >= 1
    assert "value" not in env["PARTYFLOW_API_TOKEN"] and env["PARTYFLOW_API_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"]["type"] == "Recreate"

    # the Service reaches the server's pods on the port it listens on
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    port = service["spec"]["ports"][0]
    assert port["targetPort"] in {p["name"] for p in server["ports"]} and flags(serve)["port"] == "8188"


def test_the_dockerfile_has_a_worker_target_and_still_builds_the_server_by_default() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM\s+(\S+)\s+AS\s+(\S+)", text, flags=re.MULTILINE)
    assert [name for _, name in stages] == ["base", "worker", "server"]  # the last stage is `docker build .`'s
    worker = text.split("AS worker", 1)[1].split("\nFROM ", 1)[0]
    assert '".[ray]"' in worker and "ray start --address=" in worker and "--block" in worker
    assert "USER partyflow" in worker
    server = text.split("AS server", 1)[1]
    assert 'CMD ["partyflow", "serve"' in server and "EXPOSE 8188" in server

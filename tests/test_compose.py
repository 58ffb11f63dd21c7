"""docker-compose.yml and the Dockerfile describe the same systems as the end-to-end tests.

No Docker engine runs on our machines or in CI, so nothing here starts a container. The file
is checked twice: by Compose itself (`docker compose config`, or Debian's `docker-compose`,
which .ci/run installs: both read and validate a file without an engine), and here, value by
value: which services each profile starts, that every port is published on loopback only, that
the gateways run `toolbridge serve` on a valid config, and that nginx's upstreams are the
cluster's replicas. tests/e2e/test_e2e_cluster.py runs the cluster's two files without Docker.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolbridge.cli import _parser
from toolbridge.config_file import load_config
from toolbridge.demo.service import main as demo_main
from toolbridge.serve.bodies import MAX_REQUEST_BYTES

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ["gateway-a", "gateway-b", "nginx", "notes", "postgres", "redis"]


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def interpolated(value: str, environ: Mapping[str, str]) -> str:
    """`${VAR}` and `${VAR:-default}` as Compose substitutes them."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: environ.get(m[1]) or m[2] or "", value)


def started(profile: str) -> list[str]:
    """The services `docker compose --profile PROFILE up` starts."""
    services = compose()["services"]
    return sorted(n for n, s in services.items() if profile in s.get("profiles", [profile]))


def test_each_profile_starts_its_own_services_only() -> None:
    assert {profile: started(profile) for profile in ("demo", "config", "cluster")} == {
        "demo": ["demo"],
        "config": ["gateway", "notes"],
        "cluster": CLUSTER,
    }
    services = compose()["services"]
    for profile in ("demo", "config", "cluster"):
        for name in started(profile):
            needed = set(services[name].get("depends_on", []))
            assert needed <= set(started(profile)), (profile, name, needed)


def test_every_port_is_published_on_loopback_only() -> None:
    ports = {name: s.get("ports", []) for name, s in compose()["services"].items()}
    assert ports == {
        "demo": ["127.0.0.1:8080:8080"],
        "notes": [],
        "gateway": ["127.0.0.1:8081:8080"],
        "postgres": ["127.0.0.1:5433:5432"],
        "redis": ["127.0.0.1:6380:6379"],
        "gateway-a": ["127.0.0.1:8091:8080"],
        "gateway-b": ["127.0.0.1:8092:8080"],
        "nginx": ["127.0.0.1:8090:8080"],
    }


def test_our_services_build_the_image_and_the_others_are_pinned_images() -> None:
    services = compose()["services"]
    built = {name: s.get("build") for name, s in services.items()}
    images = {name: s.get("image") for name, s in services.items()}
    ours = ["demo", "gateway", "gateway-a", "gateway-b", "notes"]
    assert {name: built[name] for name in ours} == dict.fromkeys(ours, ".")
    assert {name: images[name] for name in images if name not in ours} == {
        "postgres": "postgres:16",
        "redis": "redis:7",
        "nginx": "nginx:1.27",
    }


def test_gateway_commands_are_valid_toolbridge_commands() -> None:
    services = compose()["services"]
    for name in ("demo", "gateway", "gateway-a", "gateway-b"):
        args = _parser().parse_args(services[name]["command"])
        assert (args.run.__name__, args.host, args.port) == ("_serve", "0.0.0.0", 8080)
    assert services["gateway"]["volumes"] == ["./examples/compose:/config:ro"]


def test_the_notes_service_command_runs_the_demo_api() -> None:
    entrypoint = compose()["services"]["notes"]["entrypoint"]
    assert entrypoint[:3] == ["python", "-m", "toolbridge.demo.service"]
    assert callable(demo_main)


def test_the_mounted_config_is_valid_and_points_at_the_notes_service() -> None:
    environ = {"ALICE_KEY": "a" * 20, "OPS_KEY": "o" * 20}
    config = load_config(ROOT / "examples" / "compose" / "toolbridge.yaml", environ)
    (server,) = config.servers
    assert (server.spec, server.base_url) == ("http://notes:8901/openapi.yaml", "http://notes:8901")


def test_the_two_replicas_are_one_gateway_on_two_ports() -> None:
    services = compose()["services"]
    a, b = (
        {k: v for k, v in services[n].items() if k != "ports"} for n in ("gateway-a", "gateway-b")
    )
    assert a == b
    assert a["volumes"] == ["./deploy/cluster:/config:ro"]
    assert a["command"][:3] == ["serve", "-c", "/config/toolbridge.yaml"]
    assert a["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
        "notes": {"condition": "service_started"},
    }


def test_the_cluster_config_shares_postgresql_and_redis() -> None:
    replica = compose()["services"]["gateway-a"]
    environ = {name: interpolated(value, {}) for name, value in replica["environment"].items()}
    text = (ROOT / "deploy" / "cluster" / "toolbridge.yaml").read_text()
    # Every variable the file uses, the replicas are given.
    assert sorted(set(re.findall(r"\$\{(\w+)", text))) == sorted(
        set(environ) - {"TOOLBRIDGE_SECRET_KEY"}
    )

    config = load_config(ROOT / "deploy" / "cluster" / "toolbridge.yaml", environ)
    assert config.state is not None
    assert config.auth is not None
    assert config.auth.rate_limit is not None
    (server,) = config.servers
    assert (
        config.state.url,
        config.auth.rate_limit.redis,
        [key.user for key in config.auth.api_keys],
        (server.id, server.spec, server.base_url),
    ) == (
        "postgresql://toolbridge:toolbridge-demo-password-change-me@postgres:5432/toolbridge",
        "redis://redis:6379/0",
        ["alice", "ops"],
        ("notes", "http://notes:8901/openapi.yaml", "http://notes:8901"),
    )
    postgres = compose()["services"]["postgres"]["environment"]
    assert interpolated(postgres["POSTGRES_PASSWORD"], {}) == environ["POSTGRES_PASSWORD"]
    assert (postgres["POSTGRES_USER"], postgres["POSTGRES_DB"]) == ("toolbridge", "toolbridge")


def test_nginx_runs_the_cluster_config_in_front_of_the_replicas() -> None:
    nginx = compose()["services"]["nginx"]
    assert nginx["command"] == ["nginx", "-c", "/etc/nginx/cluster/nginx.conf", "-g", "daemon off;"]
    assert nginx["volumes"] == ["./deploy/cluster:/etc/nginx/cluster:ro"]
    assert nginx["depends_on"] == {
        "gateway-a": {"condition": "service_healthy"},
        "gateway-b": {"condition": "service_healthy"},
    }
    conf = (ROOT / "deploy" / "cluster" / "nginx.conf").read_text()
    assert re.findall(r"^\s*server (\S+) ", conf, re.M) == ["gateway-a:8080", "gateway-b:8080"]
    assert re.findall(r"^\s*listen (\S+);", conf, re.M) == ["8080"]  # nginx's published port
    assert re.findall(r"^\s*proxy_pass (\S+);", conf, re.M) == ["http://toolbridge"]
    (limit,) = re.findall(r"^\s*client_max_body_size (\d+)m;", conf, re.M)
    assert int(limit) * 1024 * 1024 == MAX_REQUEST_BYTES


def test_the_dockerfile_installs_the_package_and_serves() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "RUN pip install --no-cache-dir ." in text
    assert 'ENTRYPOINT ["toolbridge"]' in text
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]' in text


def compose_command() -> list[str]:
    """Docker's Compose plugin when there is one, else Debian's `docker-compose`; neither needs
    an engine to read a file. Missing both fails under CI and skips elsewhere."""
    docker = shutil.which("docker")
    if docker is not None:
        found = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if found.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone is not None:
        return [standalone]
    message = (
        "neither `docker compose` nor `docker-compose` was found: install the Debian package "
        "'docker-compose' (apt-get install docker-compose)"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def test_compose_itself_accepts_the_file() -> None:
    command = [*compose_command(), "--project-directory", str(ROOT), "-f", "docker-compose.yml"]
    checked = subprocess.run(
        [*command, "config", "--quiet"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert (checked.returncode, checked.stderr) == (0, "")
    listed = subprocess.run(
        [*command, "--profile", "cluster", "config", "--services"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    # (docker-compose 1.x lists every service whatever the profile; the plugin, the profile's)
    assert set(listed.stdout.split()) in ({*CLUSTER}, set(compose()["services"]))

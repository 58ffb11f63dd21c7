"""docker-compose.yml and the Dockerfile describe the same system as the end-to-end tests.

No Docker engine runs on our machines, so the structure is checked here: every service builds
the image, the gateway services run `toolbridge serve`, ports are published on loopback only,
and the mounted config is a valid toolbridge config whose upstream is the `notes` service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from toolbridge.cli import _parser
from toolbridge.config_file import load_config
from toolbridge.demo.service import main as demo_main

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_every_service_builds_the_image_and_publishes_on_loopback_only() -> None:
    services = compose()["services"]
    assert sorted(services) == ["demo", "gateway", "notes"]
    for service in services.values():
        assert service["build"] == "."
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:")


def test_gateway_commands_are_valid_toolbridge_commands() -> None:
    services = compose()["services"]
    for name in ("demo", "gateway"):
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


def test_the_dockerfile_installs_the_package_and_serves() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "RUN pip install --no-cache-dir ." in text
    assert 'ENTRYPOINT ["toolbridge"]' in text
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]' in text

"""The bundled demo: a small notes service (remote, over HTTP) and a clock (a local tool file).

`toolbridge serve` without a config serves `demo_config(url)` once `service.create_demo_app()`
listens at `url`. The demo's files ship inside the package, so an installed wheel has them.
"""

from __future__ import annotations

from pathlib import Path

from toolbridge.config import Config, LocalTools, Server

DEMO_DIR = Path(__file__).resolve().parent
DEMO_SPEC = DEMO_DIR / "openapi.yaml"
"""The OpenAPI document of the demo notes service."""
DEMO_TOOLS = DEMO_DIR / "tools" / "clock.py"
"""The demo's local tool file (Open WebUI style)."""


def demo_config(service_url: str) -> Config:
    """The config that serves the demo: the notes service at `service_url`, and the clock."""
    return Config(
        servers=(Server(id="demo", spec=DEMO_SPEC.name, base_url=service_url),),
        tools=(LocalTools(id="clock", path=str(DEMO_TOOLS.relative_to(DEMO_DIR))),),
        base_dir=DEMO_DIR,
    )

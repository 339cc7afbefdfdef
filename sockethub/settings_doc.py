"""Prints the configuration tables of the README from the settings classes."""

from __future__ import annotations

from gateway.settings import GatewaySettings
from platform_runners.settings import RunnerSettings
from sockethub.runtime.settings import CommonSettings
from sockethub.settings_cli import markdown_rows

HEADER = "| variable | flag | default | meaning |\n|---|---|---|---|"


def tables() -> str:
    common = frozenset(CommonSettings.model_fields)
    parts: list[tuple[str, type[CommonSettings], frozenset[str]]] = [
        ("Shared by every process", CommonSettings, frozenset()),
        ("Gateway (`sockethub gateway`, `sockethub dev`)", GatewaySettings, common),
        ("Runners (`sockethub runner`, `sockethub runners`)", RunnerSettings, common),
    ]
    out = []
    for title, cls, skip in parts:
        out.append(f"### {title}\n\n{HEADER}\n" + "\n".join(markdown_rows(cls, skip)))
    return "\n\n".join(out) + "\n"


if __name__ == "__main__":
    print(tables(), end="")

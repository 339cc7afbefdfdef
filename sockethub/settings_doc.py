"""Generates docs/configuration.md from the settings models.

``python -m sockethub.settings_doc`` prints it; ``--write`` replaces the committed file
(a unit test fails while the two differ).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic_settings import BaseSettings

from gateway.settings import GatewaySettings
from platform_runners.settings import (
    DavSettings,
    IrcSettings,
    PersistentSettings,
    RunnerSettings,
    XmppSettings,
)
from sockethub.runtime.settings import CommonSettings
from sockethub.settings_cli import TOOLING_VARIABLES, markdown_rows

DOC_PATH = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
COMMAND = "python -m sockethub.settings_doc --write"
HEADER = "| variable | flag | default | meaning |\n|---|---|---|---|"

INTRO = f"""\
# Configuration

<!-- Generated from the settings models by `{COMMAND}`; do not edit by hand. -->

Every setting is an environment variable and a command-line flag of the same name: the
variable without `SOCKETHUB_`, in lower case with dashes (`SOCKETHUB_KAFKA_BOOTSTRAP` is
`--kafka-bootstrap`). A flag wins over the variable. Each command accepts the settings
of the processes it runs: `sockethub gateway` and `sockethub dev` the shared and gateway
settings, `sockethub runner` and `sockethub runners` the shared, runner and platform
settings, `sockethub replay` the shared ones (`sockethub <command> --help` lists them).

A secret can also be read from a file: `SOCKETHUB_<NAME>_FILE=/path` reads the value of
`SOCKETHUB_<NAME>` from that file, without its trailing newline (for Docker and
Kubernetes secrets). Setting both variables is an error.

At start every process logs one warning that names each `SOCKETHUB_*` variable that
no setting below reads (a misspelt name otherwise changes nothing), with the closest
known name when there is one.
"""


def _table(title: str, cls: type[BaseSettings], skip: frozenset[str] = frozenset()) -> str:
    return f"## {title}\n\n{HEADER}\n" + "\n".join(markdown_rows(cls, skip))


def tables() -> str:
    common = frozenset(CommonSettings.model_fields)
    parts = [
        _table("Shared by every process", CommonSettings),
        _table("Gateway (`sockethub gateway`, `sockethub dev`)", GatewaySettings, common),
        _table("Runners (`sockethub runner`, `sockethub runners`)", RunnerSettings, common),
        _table("Persistent connections (the `irc` and `xmpp` platforms)", PersistentSettings),
        _table("The `irc` platform", IrcSettings),
        _table("The `xmpp` platform", XmppSettings),
        _table("The `caldav` and `carddav` platforms", DavSettings),
    ]
    tooling = "\n".join(f"| `{name}` | {text} |" for name, text in TOOLING_VARIABLES.items())
    parts.append(
        "## Development and deployment tooling\n\n"
        "Not settings of a process; the unknown-variable warning knows them.\n\n"
        f"| variable | meaning |\n|---|---|\n{tooling}"
    )
    return "\n\n".join(parts) + "\n"


def render() -> str:
    return f"{INTRO}\n{tables()}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sockethub.settings_doc", description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"replace {DOC_PATH.name}")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        DOC_PATH.write_text(text)
        print(f"wrote {DOC_PATH}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

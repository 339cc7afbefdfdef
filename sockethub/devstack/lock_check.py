"""Do the lock files in ``requirements/`` still describe ``pyproject.toml``?

``make lock`` records a fingerprint of the inputs it compiled (the dependency tables of
``pyproject.toml`` and the ``requirements/*.in`` files) in ``requirements/inputs.sha256``.
Every ``make install`` compares it before touching ``.venv``, so an edited dependency
list fails at once with the command that fixes it instead of installing something the
lock never resolved.

Standard library only: it runs with the system Python before the virtual environment
exists (``python3 sockethub/devstack/lock_check.py``).
"""

from __future__ import annotations

import hashlib
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = "requirements"
FINGERPRINT = "inputs.sha256"
LOCKS = ("runtime.lock", "test.lock", "build.lock", "tools.lock")
FIX = "run `make lock` and commit requirements/"


def lock_inputs(root: Path) -> dict[str, Any]:
    """What the locks are compiled from; anything else in pyproject.toml may change freely."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    project = pyproject.get("project", {})
    return {
        "build-system.requires": pyproject.get("build-system", {}).get("requires", []),
        "project.requires-python": project.get("requires-python"),
        "project.dependencies": project.get("dependencies", []),
        "project.optional-dependencies": project.get("optional-dependencies", {}),
        "requirements": {
            path.name: _requirement_lines(path.read_text())
            for path in sorted((root / REQUIREMENTS).glob("*.in"))
        },
    }


def _requirement_lines(text: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def fingerprint(root: Path) -> str:
    canonical = json.dumps(lock_inputs(root), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def problems(root: Path = ROOT) -> list[str]:
    """Empty when the locks match the inputs; otherwise one line per problem."""
    found: list[str] = []
    folder = root / REQUIREMENTS
    missing = [name for name in LOCKS if not (folder / name).is_file()]
    if missing:
        found.append(f"{REQUIREMENTS}/ lacks {', '.join(missing)}: {FIX}")
    recorded_path = folder / FINGERPRINT
    if not recorded_path.is_file():
        found.append(f"{REQUIREMENTS}/{FINGERPRINT} is missing: {FIX}")
    elif recorded_path.read_text().strip() != fingerprint(root):
        found.append(
            "pyproject.toml's dependencies (or requirements/*.in) changed since the lock "
            f"was made: {FIX}"
        )
    return found


def write(root: Path = ROOT) -> None:
    (root / REQUIREMENTS / FINGERPRINT).write_text(fingerprint(root) + "\n")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--write"]:
        write(ROOT)
        return 0
    if args:
        print("usage: lock_check.py [--write]", file=sys.stderr)
        return 2
    found = problems(ROOT)
    for line in found:
        print(f"lock check: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())

"""The Dockerfile: there is no engine to build it here, so check what can be checked.

The files it copies into the build context must be enough to build the project's
wheel, with every package in it, and none of them may be excluded by .dockerignore.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _final_stage() -> str:
    return DOCKERFILE.rsplit("\nFROM ", 1)[1]


def _copied_sources() -> list[str]:
    sources: list[str] = []
    for line in _final_stage().splitlines():
        match = re.match(r"COPY\s+(?!--from)(.+)\s+\S+$", line.strip())
        if match:
            sources += match.group(1).split()
    return sources


def test_runs_as_a_fixed_non_root_user_from_python_slim() -> None:
    stage = _final_stage()
    assert stage.startswith("python:3.11-slim")
    assert re.search(r"^USER 10001:10001$", stage, re.M)
    assert stage.index("USER 10001:10001") > stage.index("RUN pip install .")
    assert 'ENTRYPOINT ["sockethub"]' in stage
    assert "EXPOSE 10550" in stage


def test_copied_sources_build_the_whole_wheel(tmp_path: Path) -> None:
    context = tmp_path / "context"
    context.mkdir()
    for source in _copied_sources():
        src = REPO / source
        if src.is_dir():
            skip = shutil.ignore_patterns("node_modules", "__pycache__")
            shutil.copytree(src, context / source, ignore=skip)
        else:
            shutil.copy(src, context / source)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
         "-w", str(tmp_path / "dist"), str(context)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if "/" in n and ".dist-info" not in n}
    assert top == {"gateway", "platform_runners", "schemas", "sockethub"}
    assert any(n.startswith("schemas/avro/") for n in names)
    assert any(n.startswith("schemas/platforms/") and n.endswith(".json") for n in names)
    assert "gateway/demo/index.html" in names


def test_dockerignore_keeps_sources_and_drops_local_state() -> None:
    ignored = [
        line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]  # fmt: skip
    for source in _copied_sources():
        assert source not in ignored
    for state in (".venv", ".sockethub", "**/node_modules", "compose/.env", ".git"):
        assert state in ignored

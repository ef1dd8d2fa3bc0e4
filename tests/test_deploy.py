"""What can be checked of the Docker/Space deployment without a Docker engine."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

from app.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def _dockerfile() -> list[str]:
    """Dockerfile instructions, continuation lines joined, comments dropped."""
    text = (REPO / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _instruction(name: str) -> list[str]:
    return [line[len(name):].strip() for line in _dockerfile() if line.upper().startswith(name + " ")]


def test_base_image_is_python_311_slim():
    assert _instruction("FROM") == ["python:3.11-slim"]


def test_runs_as_non_root_uid_1000():
    runs = " ".join(_instruction("RUN"))
    assert re.search(r"useradd\b.*--uid 1000\b", runs)
    users = _instruction("USER")
    assert users and users[-1] in ("user", "1000")
    cmd_index = max(i for i, line in enumerate(_dockerfile()) if line.startswith("CMD"))
    user_index = max(i for i, line in enumerate(_dockerfile()) if line.startswith("USER"))
    assert user_index < cmd_index


def test_installs_the_same_requirements_file():
    runs = " ".join(_instruction("RUN"))
    assert "pip install -r requirements.txt" in runs
    assert any("requirements.txt" in c for c in _instruction("COPY"))


def test_command_is_the_readme_entry_point_on_port_7860():
    (cmd,) = _instruction("CMD")
    argv = json.loads(cmd)
    assert argv[:3] == ["python", "-m", "app.cli"]
    args = build_parser().parse_args(argv[3:])
    assert (args.command, args.host, args.port) == ("web", "0.0.0.0", 7860)
    assert _instruction("EXPOSE") == ["7860"]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    front = readme.split("---")[1]
    assert re.search(r"^sdk: docker$", front, re.M) and re.search(r"^app_port: 7860$", front, re.M)
    assert "python -m app.cli web" in readme.split("## Quickstart")[1].split("##")[0]


def test_dockerignore_keeps_what_the_app_needs():
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines() if p.strip()]
    needed = ["requirements.txt", "core/engine.py", "app/cli.py", "app/web/layout.py", "README.md"]
    for path in needed:
        assert not any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns), path

"""environment.yml mirrors the pins of pyproject.toml (runtime and dev dependencies)."""

import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def normalise(req: str) -> str:
    return req.replace(" ", "").lower().replace("_", "-")


def pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {normalise(r) for r in reqs}


def environment_requirements() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml must have one pip section"
    return {normalise(r) for r in pip_lists[0] if not r.startswith("-e")}


def test_environment_yml_has_exactly_the_pyproject_pins():
    missing = pyproject_requirements() - environment_requirements()
    extra = environment_requirements() - pyproject_requirements()
    assert not missing, f"in pyproject.toml but not environment.yml: {sorted(missing)}"
    assert not extra, f"in environment.yml but not pyproject.toml: {sorted(extra)}"


def test_pinned_decisions_hold():
    reqs = pyproject_requirements()
    assert "transformer-lens==3.9.0" in reqs
    assert "jupyter-book>=1.0.4,<2" in reqs

"""Dependencies: one set of exact pins. pyproject.toml (pip) and environment.yml (conda) list the
same packages at the same versions, every pin is exact, torch is 2.13.0, and the environment the
suite runs in has exactly those versions installed."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.\-+]+)$")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [
        r for extra in project.get("optional-dependencies", {}).values() for r in extra
    ]
    pins, loose = {}, []
    for r in reqs:
        m = PIN.match(r.replace(" ", ""))
        if m is None:
            loose.append(r)
            continue
        pins[normalise(m.group(1))] = m.group(2)
    assert not loose, f"pyproject.toml: requirements without an exact ==version pin: {loose}"
    assert len(pins) == len(reqs), "a package is listed twice in pyproject.toml"
    return pins


def environment_pins() -> tuple[dict[str, str], list]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pins, others = {}, []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for r in dep.get("pip", []):
                m = PIN.match(str(r).replace(" ", ""))
                if m:
                    pins[normalise(m.group(1))] = m.group(2)
                else:
                    others.append(r)
        else:
            others.append(dep)
    return pins, others


def test_pyproject_and_environment_pin_the_same_versions():
    py = pyproject_pins()
    env, others = environment_pins()
    assert {k: v for k, v in py.items() if env.get(k) != v} == {}, (
        "pinned in pyproject.toml, missing or different in environment.yml"
    )
    assert {k: v for k, v in env.items() if py.get(k) != v} == {}, (
        "pinned in environment.yml, missing or different in pyproject.toml"
    )
    # the rest of environment.yml: the interpreter (same minor as requires-python), pip, and the package itself
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == "==3.11.*" and "python=3.11" in others and "pip" in others, others
    assert [o for o in others if o not in ("python=3.11", "pip")] == ["-e .[dev]"], others


def test_torch_is_pinned_to_2_13_0():
    assert pyproject_pins()["torch"] == "2.13.0"
    assert environment_pins()[0]["torch"] == "2.13.0"


def test_installed_versions_are_the_pinned_ones():
    """The environment running this suite is the pinned one (local build tags like +cpu aside)."""
    wrong = {}
    for name, version in pyproject_pins().items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if installed.split("+", 1)[0] != version:
            wrong[name] = f"pinned {version}, installed {installed}"
    assert not wrong, wrong

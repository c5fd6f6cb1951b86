"""environment.yml (the conda spec for users) and pyproject.toml name the same dependencies."""
from __future__ import annotations

import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _normalise(req: str) -> tuple[str, str]:
    """(canonical project name, specifier set) of one requirement line."""
    r = Requirement(req)
    return r.name.lower().replace("_", "-"), str(r.specifier)


def pyproject_requirements() -> dict[str, str]:
    """The dependencies plus every optional extra of pyproject.toml (an extra may repeat a package)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs.extend(extra)
    out: dict[str, str] = {}
    for name, spec in map(_normalise, reqs):
        assert out.get(name, spec) == spec, f"pyproject.toml gives {name} two different ranges"
        out[name] = spec
    return out


def environment_yml() -> tuple[list[str], list[str]]:
    """(conda dependencies that are strings, the pip list) of environment.yml."""
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return conda, pip


def test_environment_yml_pins_python_and_uses_conda_forge() -> None:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda, _ = environment_yml()
    assert env["channels"] == ["conda-forge"]
    assert "python=3.11" in conda and "pip" in conda


def test_environment_yml_installs_ddlib_itself() -> None:
    _, pip = environment_yml()
    assert "-e ." in pip


def test_pip_list_mirrors_pyproject() -> None:
    _, pip = environment_yml()
    reqs = [r for r in pip if not r.startswith("-")]
    names = [_normalise(r)[0] for r in reqs]
    assert len(names) == len(set(names)), f"environment.yml lists a package twice: {sorted(names)}"
    env = dict(map(_normalise, reqs))
    want = pyproject_requirements()
    assert env.keys() == want.keys(), (
        f"only in environment.yml: {sorted(env.keys() - want.keys())}; "
        f"only in pyproject.toml: {sorted(want.keys() - env.keys())}")
    differ = {n: (env[n], want[n]) for n in env if env[n] != want[n]}
    assert not differ, f"version ranges differ (environment.yml, pyproject.toml): {differ}"

"""The stack's pins agree everywhere they are written: setup.cfg (the home), constraints.txt, environment.yml.

tensorflow-cpu and tensorflow-io are ABI-locked (tensorflow-io 0.37.1's .so only loads in TensorFlow 2.16),
TensorFlow 2.16 needs numpy < 2, and Horovod 0.28.1 is built from source against that TensorFlow: a pin
edited in one file and not the others gives an environment that installs and then fails at import time.
"""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
#: The pins that must agree (canonical distribution names).
STACK = ("tensorflow-cpu", "tensorflow-io", "numpy", "horovod")
#: Build flags Horovod needs (TensorFlow + MPI + Gloo, no PyTorch / MXNet).
HOROVOD_BUILD_FLAGS = {
    "HOROVOD_WITH_TENSORFLOW": "1",
    "HOROVOD_WITH_MPI": "1",
    "HOROVOD_WITH_GLOO": "1",
    "HOROVOD_WITHOUT_PYTORCH": "1",
    "HOROVOD_WITHOUT_MXNET": "1",
}


def requirements(lines) -> dict[str, SpecifierSet]:
    """{canonical name: specifier set} of requirement strings (comments and pip options skipped)."""
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        out[canonicalize_name(req.name)] = req.specifier
    return out


@pytest.fixture(scope="module")
def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


@pytest.fixture(scope="module")
def install_requires(setup_cfg) -> dict[str, SpecifierSet]:
    return requirements(setup_cfg["options"]["install_requires"].splitlines())


@pytest.fixture(scope="module")
def environment() -> dict:
    path = ROOT / "environment.yml"
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict) and "dependencies" in env, f"{path}: not a conda environment file"
    return env


def conda_and_pip(env: dict) -> tuple[list[str], list[str]]:
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, "environment.yml: expected exactly one `pip:` section"
    return conda, pip_sections[0]


def conda_name(dep: str) -> str:
    return re.split(r"[=<>!~ ]", dep, maxsplit=1)[0]


def test_setup_cfg_pins_the_whole_stack(install_requires):
    missing = [name for name in STACK if name not in install_requires]
    assert not missing, f"setup.cfg install_requires lacks {missing}"
    for name in ("tensorflow-cpu", "tensorflow-io", "horovod"):
        assert str(install_requires[name]).startswith("=="), f"setup.cfg: {name} must be pinned exactly"
    assert not install_requires["numpy"].contains("2.0.0"), (
        "setup.cfg: numpy must stay < 2 for TensorFlow 2.16"
    )


def test_environment_yml_pip_pins_match_setup_cfg(environment, install_requires):
    _, pip = conda_and_pip(environment)
    pinned = requirements(pip)
    for name in ("tensorflow-cpu", "tensorflow-io", "numpy"):
        assert name in pinned, (
            f"environment.yml pip section lacks {name} (setup.cfg pins {install_requires[name]})"
        )
        assert pinned[name] == install_requires[name], (
            f"environment.yml pins {name}{pinned[name]} but setup.cfg pins {name}{install_requires[name]}: make them equal"
        )
    # Everything the one-shot pip section installs must satisfy setup.cfg too (no looser duplicate pins).
    for name, spec in pinned.items():
        if name in install_requires:
            assert spec == install_requires[name], f"environment.yml: {name}{spec} differs from setup.cfg"


def test_horovod_is_built_in_a_second_pip_call(environment, install_requires):
    """Horovod's build imports TensorFlow; pip builds all wheels of one call before installing any."""
    _, pip = conda_and_pip(environment)
    assert "horovod" not in requirements(pip), (
        "environment.yml: horovod cannot be built in the same pip call that installs TensorFlow; "
        "keep it in the documented second step"
    )
    assert not any(line.strip().startswith("-e") for line in pip), (
        "environment.yml: `-e .` pulls horovod through setup.cfg; keep it in the documented second step"
    )
    header = (ROOT / "environment.yml").read_text()
    assert "pip install --no-build-isolation -c constraints.txt horovod" in header, (
        "environment.yml: the header must document the horovod build step"
    )


def test_constraints_match_setup_cfg(install_requires):
    path = ROOT / "constraints.txt"
    constraints = requirements(path.read_text().splitlines())
    for name in STACK:
        assert name in constraints, f"{path.name} lacks {name}"
    for name in ("tensorflow-cpu", "tensorflow-io", "horovod"):
        assert constraints[name] == install_requires[name], (
            f"{path.name} pins {name}{constraints[name]} but setup.cfg pins {name}{install_requires[name]}"
        )
    assert not constraints["numpy"].contains("2.0.0"), f"{path.name}: numpy must stay < 2 (TensorFlow 2.16)"


def test_environment_yml_conda_side(environment, setup_cfg):
    conda, _ = conda_and_pip(environment)
    channels = environment.get("channels", [])
    assert channels and channels[0] == "conda-forge", "environment.yml: conda-forge must be the first channel"
    names = {conda_name(d): d for d in conda}
    for needed in ("python", "pip", "openmpi", "cmake", "cxx-compiler"):
        assert needed in names, f"environment.yml lacks the conda package {needed}"
    python = names["python"].split("=", 1)[1]
    python_requires = SpecifierSet(setup_cfg["options"]["python_requires"])
    assert python == "3.11" and python_requires.contains("3.11.0"), (
        f"environment.yml python={python} must be 3.11 and allowed by setup.cfg python_requires {python_requires}"
    )


def test_horovod_build_flags_agree_with_makefile(environment):
    variables = {k: str(v) for k, v in (environment.get("variables") or {}).items()}
    for flag, value in HOROVOD_BUILD_FLAGS.items():
        assert variables.get(flag) == value, f"environment.yml variables: {flag} must be {value!r}"
    makefile = (ROOT / "Makefile").read_text()
    for flag, value in HOROVOD_BUILD_FLAGS.items():
        assert re.search(rf"\b{flag}={value}\b", makefile), f"Makefile HOROVOD_FLAGS lacks {flag}={value}"

"""The model registry: TensorFlow-free imports, no model code in the registry, strict overrides.

Nothing here builds a model, so these run without TensorFlow work (the strict-override checks happen before
any builder is called).
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import hvd_magtag.models as models
from hvd_magtag.config import ConfigError
from hvd_magtag.models import registry
from hvd_magtag.models.spec import SPEC_OVERRIDES, ModelSpec

PACKAGE = Path(models.__file__).parent


def test_importing_the_registry_pulls_no_tensorflow_and_lists_every_family():
    code = (
        "import sys\n"
        "from hvd_magtag.models.registry import list_models, get_spec\n"
        "from hvd_magtag.models import create_model, get_spec, list_models, register_model, ModelSpec\n"
        "names = list_models()\n"
        "spec = get_spec('samplecnn', m=3, n=4)\n"
        "heavy = sorted(m for m in ('tensorflow', 'keras', 'h5py') if m in sys.modules)\n"
        "print(len(names), spec.window, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(len(models.list_models())), "243", "[]"]
    assert {"raw", "spectral"} <= {models.get_entry(n).family for n in models.list_models()}


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


@pytest.mark.parametrize("module", ["registry", "spec", "names"])
def test_registry_spec_and_names_import_no_model_code(module):
    imported = _imported_modules(PACKAGE / f"{module}.py")
    families = {e.family for e in (models.get_entry(n) for n in models.list_models())}
    forbidden = {f"hvd_magtag.models.{m}" for m in (*families, "blocks", "layers", "kernels")}
    assert not imported & forbidden, imported & forbidden
    assert not any(name.split(".")[0] in ("tensorflow", "keras") for name in imported)


def test_the_package_imports_every_family_eagerly():
    init = _imported_modules(PACKAGE / "__init__.py")
    for family in {models.get_entry(n).family for n in models.list_models()}:
        assert f"hvd_magtag.models.{family}" in init
    assert "_ensure_loaded" not in (PACKAGE / "registry.py").read_text()


@pytest.mark.parametrize("name", models.list_models())
def test_unknown_override_names_it_and_every_accepted_option(name):
    entry = models.get_entry(name)
    assert entry.options, f"{name}: builder declares no options"
    with pytest.raises(ConfigError) as info:
        models.get_spec(name, no_such_option=1)
    message = str(info.value)
    assert message.startswith(
        f"model.overrides.no_such_option: model {name!r} has no option 'no_such_option'"
    )
    for option in [*entry.options, *SPEC_OVERRIDES]:
        assert option in message, (option, message)
    with pytest.raises(ConfigError, match="no_such_option"):
        models.create_model(name, n_tags=3, no_such_option=1)  # refused before anything is built


def test_a_typo_gets_the_close_option_and_a_mistyped_value_its_expected_type():
    with pytest.raises(ConfigError, match=r"no option 'dilaton' \(did you mean 'dilation'\?\)"):
        models.get_spec("samplecnn_dilated", dilaton=3)
    with pytest.raises(ConfigError, match=r"model.overrides.m='3': model 'samplecnn' expects int"):
        models.get_spec("samplecnn", m="3")
    with pytest.raises(ConfigError, match="expects float"):
        models.get_spec("samplecnn", width="wide")
    with pytest.raises(ConfigError, match="expects bool"):
        models.get_spec("samplecnn_se", multi=1)
    with pytest.raises(ConfigError, match=r"unknown model \(did you mean 'samplecnn'\?\)"):
        models.get_entry("samplcnn")
    # well-typed overrides pass: ints for floats, lists for tuples, spec fields
    assert models.get_spec("samplecnn", width=1, m=3, n=4).window == 243
    assert models.get_spec("samplecnn_multikernel", kernels=[3, 5], m=3, n=4).window == 243
    assert models.get_spec("samplecnn_superpool", n_windows=2).n_windows == 2


def test_builders_must_declare_every_option():
    spec = ModelSpec(window=27)

    def loose(spec, n_tags, *, m: int = 3, **rest):
        """Swallows anything."""

    def undefaulted(spec, n_tags, *, m):
        """An option without a default."""

    for builder in (loose, undefaulted):
        with pytest.raises(TypeError, match="every option named and defaulted"):
            registry.register_model("test_" + builder.__name__, spec=spec)(builder)
        assert "test_" + builder.__name__ not in models.list_models()


def test_spec_from_overrides_sees_only_its_own_options():
    seen = {}

    def spec_from(spec, m: int = 3):
        seen["m"] = m
        return spec.replace(window=m**3)

    def cube(spec, n_tags, *, m: int = 3, colour: str = "red"):
        """A registered test model."""

    registry.register_model("test_cube", spec=ModelSpec(window=27), spec_from_overrides=spec_from)(cube)
    try:
        assert models.get_spec("test_cube", m=4, colour="blue", window=100).window == 100  # spec field last
        assert models.get_spec("test_cube", m=4, colour="blue").window == 64 and seen == {"m": 4}
        assert models.list_models("test_c*") == ["test_cube"]
        assert models.get_entry("test_cube").options == {"m": 3, "colour": "red"}
        assert inspect.getdoc(cube).startswith(models.get_entry("test_cube").description)
    finally:
        registry._REGISTRY.pop("test_cube")


def test_family_listing():
    raw = models.list_models(family="raw")
    assert "samplecnn" in raw and "fcn4" not in raw
    assert set(raw) | set(models.list_models(family="spectral")) <= set(models.list_models())

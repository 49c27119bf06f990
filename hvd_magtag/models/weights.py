"""Reading ``.weights.h5`` files into zoo models, including files written before the fast layers' rename.

Keras 3 stores a functional model's weights under ``layers/<name>/vars/<i>`` where ``<name>`` is the
snake-cased *class name* of the layer plus a counter in ``model.layers`` order (``conv1d``, ``conv1d_1``,
``batch_norm_3``...), not the layer's own name. hvd_magtag 0.1.0 named its fast layers ``Conv1D`` and
``BatchNorm``; they are :class:`~hvd_magtag.models.layers.FastConv1D` and
:class:`~hvd_magtag.models.layers.FusedBatchNorm` now (same variables), so run directories trained before
the rename hold their weights under the old groups. :func:`load_weights` maps them onto the new ones (a
renamed copy in a temporary folder; the original file is not touched); checkpoints (``model.npz``, keyed by
variable path) are unaffected.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import h5py
import keras

#: layer classes renamed since 0.1.0: current name -> the name files written by 0.1.0 use
LEGACY_CLASS_NAMES = {"FastConv1D": "Conv1D", "FusedBatchNorm": "BatchNorm"}


def _snake(name: str) -> str:
    """Keras's ``naming.to_snake_case``: the group name a layer class gets in a weights file."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique(name: str, used: dict[str, int]) -> str:
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def legacy_groups(model, prefix: str = "", legacy_prefix: str = "") -> dict[str, str]:
    """{group of a layer in a file written now: its group in a 0.1.0 file}, for every layer of ``model``
    (and of the functional sub-models it holds) whose group differs."""
    mapping: dict[str, str] = {}
    used, used_legacy = {}, {}
    for layer in model.layers:
        cls = type(layer).__name__
        group = f"{prefix}layers/{_unique(_snake(cls), used)}"
        legacy = f"{legacy_prefix}layers/{_unique(_snake(LEGACY_CLASS_NAMES.get(cls, cls)), used_legacy)}"
        if group != legacy:
            mapping[group] = legacy
        if isinstance(layer, keras.Model):
            mapping.update(legacy_groups(layer, f"{group}/", f"{legacy}/"))
    return mapping


def _upgrade(source: Path, target: Path, mapping: dict[str, str]) -> None:
    """Copy ``source`` to ``target`` with each legacy group moved to its current name (two passes through
    temporary names: an old name can be another layer's new name)."""
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as f:
        moves = [(old, new) for new, old in mapping.items() if old in f]
        for k, (old, _) in enumerate(moves):
            f.move(old, f"{old.rsplit('/', 1)[0]}/__legacy_{k}")
        for k, (old, new) in enumerate(moves):
            f.move(f"{old.rsplit('/', 1)[0]}/__legacy_{k}", new)


def is_legacy(path: str | Path, model) -> bool:
    """Whether ``path`` holds ``model``'s weights in the 0.1.0 layout (groups named after the old classes)."""
    mapping = legacy_groups(model)
    if not mapping or not h5py.is_hdf5(str(path)):  # a .keras archive or a missing file: Keras says what
        return False
    with h5py.File(path, "r") as f:
        return any(new not in f and old in f for new, old in mapping.items())


def load_weights(model, path: str | Path) -> None:
    """``model.load_weights(path)`` for a ``.weights.h5`` file of either layout (see module docstring).

    Errors are Keras's: a file of another architecture fails loudly, whichever layout it has.
    """
    path = Path(path)
    if not is_legacy(path, model):
        model.load_weights(str(path))
        return
    with tempfile.TemporaryDirectory(prefix="hvd_magtag-weights-") as tmp:
        upgraded = Path(tmp) / path.name
        _upgrade(path, upgraded, legacy_groups(model))
        model.load_weights(str(upgraded))

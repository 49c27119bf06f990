"""musicnn's TF1 checkpoints -> the registry's ``musicnn`` / ``vgg_musicnn`` Keras models -> a run directory.

The checkpoints (``musicnn/<MODEL>/.index`` + ``.data-00000-of-00001`` in the installed wheel) are read with
``tf.compat.v1.train.NewCheckpointReader`` (TensorFlow 2.16; ``tf.train.load_checkpoint`` fails on the 2019
absolute path inside, and musicnn's own graph code is never imported). Every variable is accounted for:

- ignored by rule: Adam's slots (``<var>/Adam``, ``<var>/Adam_1``), ``beta1_power``, ``beta2_power``,
  ``global_step`` (optimizer state, not model);
- every other variable fills exactly one Keras weight; a variable with no place in the model, a Keras weight
  left without a variable, or a shape that does not fit raises :class:`PretrainedError` naming it.

The variable names are TF1's automatic layer names, numbered per kind in the order ``musicnn.models`` creates
the layers (``conv2d``, ``conv2d_1``, ...; ``batch_normalization``, ``batch_normalization_1``, ...; ``dense``,
``dense_1``); the VGG's convs are named ``1CNN`` .. ``5CNN``. :func:`layer_plan` lists that creation order next
to our layer names, so the mapping is written once. Two transforms:

- the mid-end convs are ``Conv2D`` kernels ``[7, C, 1, 64]`` over a transposed map in musicnn, ``Conv1D``
  kernels ``[7, C, 64]`` here (the same sums);
- musicnn flattens ``concat([max, mean], axis=2)`` of shape ``[753, 2]`` (features interleaved: max_0, mean_0,
  max_1, ...); we concatenate ``[max, mean]`` (all maxima, then all means), so the back-end batch norm's
  vectors and the first dense kernel's rows are permuted accordingly.

Checkpoint kernels are ``[kh, kw, in, out]`` / ``[in, out]`` like Keras's; batch-norm statistics and the TF1
defaults (momentum 0.99, epsilon 1e-3) match ``keras.layers.BatchNormalization``.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hvd_magtag.config import Experiment
from hvd_magtag.export import export_run
from hvd_magtag.models import musicnn as arch
from hvd_magtag.models.names import EMBEDDING_LAYER, OUTPUT_LAYER
from hvd_magtag.models.registry import create_model
from hvd_magtag.pretrained import MUSICNN_INSTALL, Pretrained, PretrainedError
from hvd_magtag.rundir import RunDir

#: Checkpoint variables that are optimizer state, skipped by rule (regular expressions on the full name).
IGNORED_VARIABLES = (r".*/Adam(_\d+)?", r"beta1_power", r"beta2_power", r"global_step")
#: TF1 variable suffix -> Keras weight attribute, per layer kind.
WEIGHT_ATTRIBUTES = {
    "conv2d": ("kernel", "bias"),
    "dense": ("kernel", "bias"),
    "batch_normalization": ("gamma", "beta", "moving_mean", "moving_variance"),
}
#: Keras layers whose kernel is musicnn's 2-D kernel with a singleton axis 2 removed.
_SQUEEZED_KERNEL = re.compile(r"block\d+_midend_conv")
#: (layer, weights) of the back-end whose inputs musicnn interleaves (max_i, mean_i); see the module docstring.
_INTERLEAVED = {
    "temporal_pool_bn": ("gamma", "beta", "moving_mean", "moving_variance"),
    "penultimate": ("kernel",),
}


def package_folder() -> Path:
    """Folder of the installed ``musicnn`` distribution (found without importing it), or PretrainedError."""
    spec = importlib.util.find_spec("musicnn")
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedError(f"the musicnn package is not installed; run: {MUSICNN_INSTALL}")
    return Path(next(iter(spec.submodule_search_locations)))


def checkpoint_folder(entry: Pretrained) -> Path:
    folder = package_folder() / entry.name
    if not (folder / ".index").is_file():
        raise PretrainedError(
            f"{folder}: no checkpoint ('.index' missing) in the installed musicnn; reinstall it: {MUSICNN_INSTALL}"
        )
    return folder


def read_checkpoint(folder: Path) -> dict[str, np.ndarray]:
    """Every variable of the TF1 checkpoint in ``folder`` (prefix ``folder/``), by name."""
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + os.sep)
    return {name: reader.get_tensor(name) for name in sorted(reader.get_variable_to_shape_map())}


def labels(entry: Pretrained) -> list[str]:
    """The model's tag list, from ``musicnn/configuration.py`` (read as text: importing it is harmless but
    musicnn's package code is never imported here)."""

    source = (package_folder() / "configuration.py").read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == entry.labels for t in node.targets):
            return [str(v) for v in ast.literal_eval(node.value)]
    raise PretrainedError(
        f"{package_folder()}/configuration.py: no {entry.labels}; reinstall: {MUSICNN_INSTALL}"
    )


def layer_plan(architecture: str) -> list[tuple[str, str]]:
    """(TF1 kind or ``=scope``, Keras layer name) in the order musicnn's code creates its layers."""

    bn = "batch_normalization"
    plan = [(bn, "input_bn")]
    if architecture == "vgg_musicnn":
        for i in range(1, len(arch.VGG_POOLS) + 1):
            plan += [(f"={i}CNN", f"conv{i}"), (bn, f"conv{i}_bn")]
        return plan + [("dense", OUTPUT_LAYER)]
    blocks = [f"timbral_{kt}x{kf}" for kt, kf in arch.TIMBRAL_KERNELS]
    blocks += [f"temporal_{kt}" for kt in arch.TEMPORAL_KERNELS]
    blocks += ["midend"] * arch.MIDEND_LAYERS
    for i, block in enumerate(blocks, start=1):
        plan += [("conv2d", f"block{i}_{block}_conv"), (bn, f"block{i}_{block}_bn")]
    return plan + [
        (bn, "temporal_pool_bn"),
        ("dense", "penultimate"),
        (bn, EMBEDDING_LAYER),
        ("dense", OUTPUT_LAYER),
    ]


def scope_names(plan: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(TF1 scope, kind, Keras layer): TF1 names the first layer of a kind ``kind``, then ``kind_1``, ..."""
    counts: dict[str, int] = {}
    out = []
    for kind, layer in plan:
        if kind.startswith("="):
            out.append((kind[1:], "conv2d", layer))
            continue
        n = counts.get(kind, 0)
        counts[kind] = n + 1
        out.append((kind if n == 0 else f"{kind}_{n}", kind, layer))
    return out


def _interleave_permutation(n: int) -> np.ndarray:
    """Index into musicnn's interleaved back-end features for each of ours: [max_0..max_{n/2-1}, mean_0..]."""
    return np.concatenate([np.arange(0, n, 2), np.arange(1, n, 2)])


def load_into(model, variables: dict[str, np.ndarray], architecture: str) -> dict[str, str]:
    """Assign checkpoint ``variables`` to ``model``'s weights; returns {checkpoint name: keras weight path}.

    Raises PretrainedError naming the first unmatched checkpoint variable, unfilled model weight or shape
    mismatch (nothing is assigned then)."""
    ignored = re.compile("|".join(f"(?:{p})" for p in IGNORED_VARIABLES))
    wanted = {name: value for name, value in variables.items() if not ignored.fullmatch(name)}
    assignments, mapping = [], {}
    for scope, kind, layer_name in scope_names(layer_plan(architecture)):
        try:
            layer = model.get_layer(layer_name)
        except ValueError:
            raise PretrainedError(
                f"model {model.name!r} has no layer {layer_name!r} for checkpoint {scope}/"
            ) from None
        for attribute in WEIGHT_ATTRIBUTES[kind]:
            name = f"{scope}/{attribute}"
            target = getattr(layer, attribute, None)
            if name not in wanted:
                raise PretrainedError(
                    f"checkpoint has no variable {name!r} for weight {layer_name}/{attribute}"
                )
            value = wanted.pop(name)
            if _SQUEEZED_KERNEL.fullmatch(layer_name) and attribute == "kernel" and value.ndim == 4:
                value = value[:, :, 0, :]
            if attribute in _INTERLEAVED.get(layer_name, ()):
                value = value[_interleave_permutation(value.shape[0])]
            if target is None or tuple(target.shape) != value.shape:
                shape = None if target is None else tuple(target.shape)
                raise PretrainedError(
                    f"checkpoint variable {name!r} {value.shape} does not fit {layer_name}/{attribute} {shape}"
                )
            assignments.append((target, value))
            mapping[name] = target.path
    if wanted:
        raise PretrainedError(
            f"checkpoint variable(s) with no place in the model: {', '.join(sorted(wanted))}"
        )
    filled = {id(t) for t, _ in assignments}
    missing = [w.path for w in model.weights if id(w) not in filled]
    if missing:
        raise PretrainedError(f"model weight(s) not in the checkpoint: {', '.join(missing)}")
    for target, value in assignments:
        target.assign(value.astype(np.float32))
    return mapping


def reported_results(folder: Path) -> dict[str, float]:
    """ROC-AUC / PR-AUC from the checkpoint's ``experiment.result`` (musicnn's own test-set evaluation)."""
    text = (folder / "experiment.result").read_text()
    numbers = [float(v) for v in re.findall(r"AUC:\s*([0-9.]+)", text)]
    if len(numbers) < 2:
        return {}
    return {"roc_auc": numbers[0], "pr_auc": numbers[1], "text": text.strip()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(entry: Pretrained):
    """(Keras model with the checkpoint's weights, tags, provenance dict)."""

    folder = checkpoint_folder(entry)
    tags = labels(entry)
    model = create_model(entry.architecture, n_tags=len(tags))
    variables = read_checkpoint(folder)
    mapping = load_into(model, variables, entry.architecture)
    provenance = {
        "source": entry.key,
        "distribution": f"musicnn {md.version('musicnn')}",
        "checkpoint": str(folder),
        "checkpoint_sha256": _sha256(folder / ".data-00000-of-00001"),
        "licence": entry.licence,
        "copyright": "Music Technology Group, Universitat Pompeu Fabra 2019; code and models by Jordi Pons",
        "paper": "Pons & Serra 2019, musicnn: pre-trained convolutional neural networks for music audio tagging "
        "(ISMIR late-breaking/demo)",
        "trained_on": entry.trained_on,
        "reported": reported_results(folder),
        "musicnn_config": json.loads((folder / "config.json").read_text()),
        "variables": {"mapped": len(mapping), "ignored": len(variables) - len(mapping)},
    }
    return model, tags, provenance


def import_run(entry: Pretrained, target: Path, *, force: bool = False, export: bool = True) -> Path:
    """Write the run directory for ``entry`` at ``target`` (atomically: built beside it, then renamed)."""

    existing = RunDir(target)
    if existing.exists() and not force:
        if existing.info.get("pretrained", {}).get("source") == entry.key and existing.best_weights.is_file():
            return existing.path
        raise PretrainedError(f"{target}: holds another run; pass another --out or --force to replace it")
    if target.exists() and any(target.iterdir()) and not (target / "run.json").is_file():
        raise PretrainedError(f"{target}: exists and is not a run directory; choose another --out")

    model, tags, provenance = build(entry)
    exp = Experiment()
    exp.model.name = entry.architecture
    if entry.labels == "MTT_LABELS":  # musicnn's MTT tags are the MTAT top-50 list in the same order
        exp.data.dataset, exp.data.vocabulary = "mtat", "top50"
    else:
        exp.data.dataset = "folder"
    config = provenance["musicnn_config"]
    exp.train.optimizer, exp.train.lr = "adam", float(config.get("learning_rate", 0.001))
    exp.train.batch_size = int(config.get("batch_size", 32))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        run = RunDir(tmp)
        exp.run_dir = str(target)
        exp.save(run.config_path)
        run.best_weights.parent.mkdir(parents=True)
        model.save_weights(str(run.best_weights))
        run.write_run_info(
            {
                "model": entry.architecture,
                "overrides": {},
                "spec": model.spec.to_dict(),
                "tags": tags,
                "n_params": int(model.count_params()),
                "dataset": {"name": entry.trained_on},
                "pretrained": provenance,
                "world_size": 1,
                "versions": _versions(),
                "command": " ".join(sys.argv),
            }
        )
        if export:
            export_run(tmp)
        if target.exists():
            shutil.rmtree(target)
        try:
            tmp.rename(target)
        except OSError:
            if not (target / "run.json").is_file():  # not a concurrent import of the same model
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


def _versions() -> dict[str, Any]:
    from hvd_magtag.train import _versions as train_versions

    return train_versions()

"""Fine-tuning the released MTT_musicnn on a folder of real music with another vocabulary (issue 16):
``python -m hvd_magtag.train --model musicnn --init-from MTT_musicnn`` with the front-end frozen and the
loaded layers' learning rate scaled to 0, then a resume.

The folder: the five real recordings of tests/fixtures/musicnn (10 s, 16 kHz) with a tags.csv of three tags
that are not MTAT's vocabulary list (guitar, orchestral, drums). The source weights are the musicnn wheel's
checkpoint (imported into this module's private cache, then named ``MTT_musicnn`` as a user would)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from musicnn_fixtures import clip_path
from train_fixtures import child_env

from hvd_magtag.pretrained import lookup
from hvd_magtag.rundir import RunDir

pytestmark = [pytest.mark.timeout(900)]

#: (clip, tags, split): three tags, two validation clips
CLIPS = [
    ("muldjord_armygeddon", "guitar;drums", "train"),
    ("wesnoth_love_theme", "orchestral", "train"),
    ("hyperrogue_caves", "drums", "train"),
    ("sectoid_feelings", "guitar", "valid"),
    ("wesnoth_traveling_minstrels", "orchestral", "valid"),
]
#: the front-end: five conv + batch-norm blocks (timbral and temporal), kept fixed
FREEZE = "block[1-5]_*"
STEPS = 3


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private pretrained cache with MTT_musicnn imported (no export: nothing here tags)."""
    from hvd_magtag.pretrained import import_model

    root = tmp_path_factory.mktemp("cache")
    import_model("MTT_musicnn", root / "pretrained" / "MTT_musicnn", export=False)
    return root


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    rows = ["path,tags,split"]
    for name, tags, split in CLIPS:
        shutil.copy2(clip_path(name), root / f"{name}.flac")
        rows.append(f"{name}.flac,{tags},{split}")
    (root / "tags.csv").write_text("\n".join(rows) + "\n")
    return root


def train(music, run_dir, cache, steps: int, cache_env=None):
    cmd = [sys.executable, "-m", "hvd_magtag.train", "--model", "musicnn", "--init-from", "MTT_musicnn",
           "--dataset", "folder", "--data-root", str(music), "--run-dir", str(run_dir), "--steps", str(steps),
           "--set", f"train.freeze={FREEZE}", "--set", "train.init_lr_scale=0",
           "--set", "data.vocabulary=top3", "--set", "train.batch_size=2", "--set", "train.optimizer=adam",
           "--set", "train.lr=0.01", "--set", "train.checkpoint_every=1", "--set", "train.validate_every=3",
           "--set", "train.valid_windows=1", "--set", "train.log_every=1", "--set", "eval.batch_size=4"]  # fmt: skip
    env = {**child_env(), "HVD_MAGTAG_CACHE": str(cache_env or cache)}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def finetuned(music, cache, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("finetuned") / "run"
    proc = train(music, run_dir, cache, STEPS)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc


def _checkpoint_arrays(run_dir, step: int) -> dict[str, np.ndarray]:
    """model.npz of checkpoint ``step``: {variable path: array}."""
    with np.load(RunDir(run_dir).checkpoint_dir / f"step-{step:08d}" / "model.npz") as z:
        return {key.split(":", 1)[1]: z[key] for key in z.files}


def test_init_from_loads_every_layer_but_the_output_as_the_checkpoint_holds_it(cache, monkeypatch):
    """Step 0: the loop's own init_from on a fresh 3-tag musicnn; the loaded front-end weights are the TF1
    checkpoint's arrays (no transform between them), every loaded layer equals the imported model's."""
    from hvd_magtag import finetune
    from hvd_magtag.models.registry import create_model
    from hvd_magtag.pretrained.musicnn import checkpoint_folder, layer_plan, read_checkpoint, scope_names

    monkeypatch.setenv("HVD_MAGTAG_CACHE", str(cache))
    model = create_model("musicnn", n_tags=3)
    plan = finetune.init_from(model, ["guitar", "orchestral", "drums"], "MTT_musicnn")
    layers = finetune.weight_layers(model)
    assert plan.loaded == [p for p in layers if p != "tags"] and list(plan.reinitialised) == ["tags"]
    assert plan.source == str(cache / "pretrained" / "MTT_musicnn")
    source = finetune.weight_layers(RunDir(plan.source).load_model())
    for path in plan.loaded:
        for mine, theirs in zip(layers[path].weights, source[path].weights):
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    tf1 = read_checkpoint(checkpoint_folder(lookup("MTT_musicnn")))
    front = [
        (scope, layer) for scope, _, layer in scope_names(layer_plan("musicnn")) if layer.startswith("block1")
    ]
    assert len(front) == 2
    for scope, layer in front:
        for w in layers[layer].weights:
            np.testing.assert_array_equal(w.numpy(), tf1[f"{scope}/{w.name}"])


def test_finetuning_keeps_frozen_and_loaded_layers_and_trains_the_new_output(finetuned, cache):
    run_dir, proc = finetuned
    from hvd_magtag import finetune

    info = RunDir(run_dir).info
    assert sorted(info["tags"]) == ["drums", "guitar", "orchestral"]
    record = info["init_from"]
    assert record["init_from"] == "MTT_musicnn" and record["init_lr_scale"] == 0.0
    assert list(record["reinitialised"]) == ["tags"] and "tags" not in record["loaded"]
    lines = [line for line in proc.stderr.splitlines() if "init from" in line]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert f"loaded {len(record['loaded'])} layers [input_bn, block1_timbral_7x38_conv" in lines[0]
    assert "re-initialised 1 [tags: another tag vocabulary (50 tags there, 3 here)]" in lines[0]
    assert "frozen 10 [block1_timbral_7x38_conv," in lines[0] and "learning rate x0" in lines[0]

    source = {v.path: v.numpy() for v in RunDir(record["source"]).load_model().weights}
    first, last = _checkpoint_arrays(run_dir, 1), _checkpoint_arrays(run_dir, STEPS)
    frozen = [p for p in source if p.startswith(tuple(f"block{i}_" for i in range(1, 6)))]
    assert len(frozen) == 5 * 2 + 5 * 4  # conv kernel + bias, bn gamma/beta/moving statistics
    for path in frozen:  # not trained, batch norm in inference mode: statistics untouched too
        np.testing.assert_array_equal(last[path], source[path], err_msg=path)
    model = RunDir(run_dir).build_model()
    finetune.freeze_layers(model, [FREEZE])
    loaded_trainable = [v.path for v in finetune.loaded_trainable_variables(model, record["loaded"])]
    assert "block6_midend_conv/kernel" in loaded_trainable and "penultimate/kernel" in loaded_trainable
    for path in loaded_trainable:  # init_lr_scale=0: loaded, trainable, not moved
        np.testing.assert_array_equal(last[path], source[path], err_msg=path)
    for path in ("tags/kernel", "tags/bias"):  # the new output layer learns
        assert np.abs(last[path] - first[path]).max() > 1e-4, path
    valid = [e for e in RunDir(run_dir).read_metrics() if e["event"] == "valid"]
    assert [e["step"] for e in valid] == [STEPS] and np.isfinite(valid[0]["loss"])


def test_resume_continues_from_the_checkpoint_without_reading_the_source(finetuned, music, cache, tmp_path):
    """The resumed run would fail if it resolved MTT_musicnn again: its cache is a file, not a folder."""
    run_dir, _ = finetuned
    blocked = tmp_path / "not-a-cache"
    blocked.write_text("")
    record = RunDir(run_dir).info["init_from"]
    proc = train(music, run_dir, cache, STEPS + 1, cache_env=blocked)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"from step {STEPS}" in proc.stderr and "init from" not in proc.stderr
    assert RunDir(run_dir).info["init_from"] == record
    assert (
        json.loads((RunDir(run_dir).checkpoint_dir / f"step-{STEPS + 1:08d}" / "state.json").read_text())[
            "step"
        ]
        == STEPS + 1
    )


def test_unknown_frozen_layer_is_one_line_listing_the_layers():
    """What ``train --set train.freeze=frontend_*`` stops with (exit 2) on musicnn, before any training."""
    from hvd_magtag import finetune
    from hvd_magtag.config import ConfigError
    from hvd_magtag.models.registry import create_model

    with pytest.raises(ConfigError) as e:
        finetune.freeze_layers(create_model("musicnn", n_tags=3), ["frontend_*"])
    error = str(e.value)
    assert "\n" not in error and "train.freeze 'frontend_*' matches no layer of model 'musicnn'" in error
    assert "block1_timbral_7x38_conv" in error and error.endswith("embedding, tags")

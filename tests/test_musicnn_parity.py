"""The imported musicnn models against musicnn itself, on real recordings (tests/fixtures/musicnn).

References: musicnn 0.1.0's own ``extractor()`` (TF1 graph code, librosa front end with its float16 cast) in a
scratch venv, committed with the script that made them. Here the same FLAC excerpts go through this toolkit's
pipeline (``hvd_magtag.Tagger``: decode, consecutive 187-frame windows, in-graph log-mel, Keras model). Stated
tolerance: max abs difference <= 0.02 per tag (musicnn rounds its spectrogram to float16; each window carries
the 256 samples before it, so its first centred frame reads what musicnn's whole-clip spectrogram reads), and
the same top-5 tags for every clip (mean of the same three 3 s patches, as ``musicnn.tagger.top_tags``).
"""

from __future__ import annotations

import numpy as np
import pytest
from musicnn_fixtures import arrays, clip_names, clip_path, summary

from hvd_magtag.pretrained import PretrainedError, import_model
from hvd_magtag.pretrained import musicnn as mapping

#: Max abs difference per tag allowed between musicnn's taggram and ours.
TAGGRAM_TOLERANCE = 0.02
PARITY_MODELS = ("MTT_musicnn", "MTT_vgg")


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("pretrained")
    return {name: import_model(name, out / name, export=False) for name in PARITY_MODELS}


@pytest.fixture(scope="module")
def taggers(imported) -> dict:
    from hvd_magtag.tag import Tagger

    return {name: Tagger(path) for name, path in imported.items()}


def _top5(tags: list[str], taggram: np.ndarray) -> list[str]:
    mean = taggram.mean(axis=0)
    return [tags[i] for i in mean.argsort()[-5:][::-1]]


@pytest.mark.parametrize("model", PARITY_MODELS)
@pytest.mark.parametrize("clip", clip_names())
def test_taggram_matches_musicnn(taggers, model, clip):
    tagger = taggers[model]
    reference = arrays()[f"{clip}/{model}/taggram"]  # [3, 50]: musicnn's full 3 s patches
    assert tagger.tags == summary()["labels"][model]
    result = tagger.tag(clip_path(clip))
    ours = result.taggram[: reference.shape[0]]  # our last row is the zero-padded tail musicnn drops
    assert result.taggram.shape[0] == reference.shape[0] + 1
    per_tag = np.abs(ours - reference).max(axis=0)  # [50]
    worst = int(per_tag.argmax())
    print(
        f"{model} {clip}: max abs diff {per_tag.max():.2e} ({tagger.tags[worst]}), mean {per_tag.mean():.2e}"
    )
    assert per_tag.max() <= TAGGRAM_TOLERANCE, f"{tagger.tags[worst]}: {per_tag.max():.4f}"
    assert _top5(tagger.tags, ours) == summary()["clips"][clip]["models"][model]["top5"]


@pytest.mark.parametrize("clip", clip_names())
def test_without_context_only_each_windows_first_frame_differs(taggers, clip):
    """The tagger reads the 256 samples before each window (its first centred frame's left half). Without
    them (zeros, as the training pipeline's random windows have) window 0 is unchanged and later windows
    drift by up to ~0.02: the context is what makes the parity exact."""
    import tensorflow as tf

    from hvd_magtag.features import features_for
    from hvd_magtag.rundir import RunDir

    tagger = taggers["MTT_musicnn"]
    reference = arrays()[f"{clip}/MTT_musicnn/taggram"]
    windows = np.concatenate([w for w, _ in tagger.window_chunks(clip_path(clip))])[: reference.shape[0]]
    model = RunDir(tagger.path).load_model()
    bare = model(features_for(tagger.spec)(tf.constant(windows[:, 256:])), training=False).numpy()
    assert np.abs(bare[0] - reference[0]).max() < 1e-3
    assert np.abs(bare[1:] - reference[1:]).max() > 1e-3


def test_embedding_is_musicnns_penultimate(taggers):
    """Our ``embedding`` is musicnn's "penultimate" feature. Only patch 0 is compared: musicnn 0.1.0's
    extractor appends the first batch's ``penultimate_`` again for every later batch (a stale variable in its
    loop), so rows 1-2 of the reference repeat row 0."""
    for clip in clip_names():
        reference = arrays()[f"{clip}/MTT_musicnn/penultimate"]  # [3, 200]
        np.testing.assert_array_equal(reference[1:], reference[:1].repeat(2, axis=0))  # the musicnn quirk
        ours = taggers["MTT_musicnn"].tag(clip_path(clip)).embedding[0]
        assert np.abs(ours - reference[0]).max() < 1e-3 * np.abs(reference[0]).max()


def test_import_records_provenance(imported):
    from hvd_magtag.rundir import RunDir

    run = RunDir(imported["MTT_musicnn"])
    info = run.info
    assert info["model"] == "musicnn" and info["n_params"] == 792079 and len(info["tags"]) == 50
    p = info["pretrained"]
    assert p["licence"] == "ISC" and p["source"] == "musicnn:MTT_musicnn"
    assert p["reported"]["roc_auc"] == pytest.approx(0.9067, abs=1e-4)
    assert p["variables"] == {"mapped": 64, "ignored": 86}  # 84 Adam slots + beta1/beta2 powers
    assert run.config.data.vocabulary == "top50" and run.config.model.name == "musicnn"
    vgg = RunDir(imported["MTT_vgg"]).info["pretrained"]
    assert vgg["variables"] == {"mapped": 36, "ignored": 50}
    assert vgg["reported"]["roc_auc"] == pytest.approx(0.9030, abs=1e-4)


def _variables(name: str) -> dict[str, np.ndarray]:
    from hvd_magtag.pretrained import PRETRAINED

    return mapping.read_checkpoint(mapping.checkpoint_folder(PRETRAINED[name]))


@pytest.fixture(scope="module")
def musicnn_variables() -> dict[str, np.ndarray]:
    return _variables("MTT_musicnn")


def _fresh(architecture: str):
    from hvd_magtag.models.registry import create_model

    return create_model(architecture, n_tags=50)


def test_an_unused_checkpoint_variable_fails_with_its_name(musicnn_variables):
    variables = {**musicnn_variables, "conv2d_8/kernel": np.zeros([3, 3, 1, 4], np.float32)}
    with pytest.raises(PretrainedError, match=r"no place in the model: conv2d_8/kernel"):
        mapping.load_into(_fresh("musicnn"), variables, "musicnn")


def test_a_missing_checkpoint_variable_fails_with_its_name(musicnn_variables):
    variables = dict(musicnn_variables)
    del variables["batch_normalization_9/moving_variance"]
    with pytest.raises(PretrainedError, match=r"batch_normalization_9/moving_variance.*temporal_pool_bn"):
        mapping.load_into(_fresh("musicnn"), variables, "musicnn")


def test_a_wrong_shape_fails_with_its_name(musicnn_variables):
    variables = {**musicnn_variables, "dense_1/kernel": np.zeros([200, 10], np.float32)}
    with pytest.raises(PretrainedError, match=r"'dense_1/kernel' \(200, 10\) does not fit tags/kernel"):
        mapping.load_into(_fresh("musicnn"), variables, "musicnn")


def test_the_other_familys_checkpoint_does_not_load(musicnn_variables):
    with pytest.raises(PretrainedError, match="1CNN/kernel"):
        mapping.load_into(_fresh("vgg_musicnn"), musicnn_variables, "vgg_musicnn")


def test_msd_checkpoints_map_completely():
    """MSD_musicnn and MSD_vgg (no references here) fill every weight from every non-optimizer variable."""
    for name, architecture in (("MSD_musicnn", "musicnn"), ("MSD_vgg", "vgg_musicnn")):
        mapped = mapping.load_into(_fresh(architecture), _variables(name), architecture)
        assert len(mapped) == (64 if architecture == "musicnn" else 36)

"""TFRecord extraction round trip: the four formats feed the same windows as the audio path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pipeline_audio_fixtures import tone_clips, which_clip

from hvd_magtag.data import tfrecord
from hvd_magtag.data.pipeline import eval_dataset, steps_per_epoch, train_dataset
from hvd_magtag.features import REFERENCE_TOLERANCE
from hvd_magtag.models.registry import FbankSpec, ModelSpec

RATE = 16000
RAW = ModelSpec(input="raw", window=2048)
# window - win_length = 3584 is a multiple of the hop: only a window's first frame differs from the full clip's
FBANK = ModelSpec(input="fbank", window=4096, fbank=FbankSpec(n_mels=32, win_length=512, hop_length=256))
SUPERPOOL = ModelSpec(input="raw", window=2048, windowing="superpool", n_windows=3)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfr")
    train, rates, freqs = tone_clips(root / "audio", 6, seconds=1.0)
    test, test_rates, _ = tone_clips(root / "audio_test", 3, seconds=0.9, split="test", base_freq=2000.0)
    return root, {"train": train, "test": test}, {**rates, **test_rates}, freqs


def _extract(data, spec, fmt, shards=2):
    root, splits, rates, _ = data
    out = root / f"{fmt}-{spec.input}-{spec.windowing}"
    if not (out / tfrecord.INDEX_FILE).exists():
        tfrecord.extract(
            splits, spec, fmt, out, shards=shards, manifest=rates, tags=list("abcdef"), progress=False
        )
    return out


def _eval_rows(clips, spec, rates, windows, tfrecord_dir=None, rank=0, size=1):
    ds = eval_dataset(
        clips,
        spec,
        windows=windows,
        batch_size=4,
        manifest=rates,
        rank=rank,
        size=size,
        tfrecord_dir=tfrecord_dir,
    )
    rows = [(x.numpy(), y.numpy(), int(c)) for x, y, c in ds.unbatch()]
    return sorted(rows, key=lambda r: r[2])  # stable: window order within a clip is kept


def test_index_and_shards_are_written(data):
    out = _extract(data, RAW, "raw")
    index = json.loads((out / "index.json").read_text())
    assert index["format"] == "raw" and index["counts"] == {"train": 6, "test": 3}
    assert index["tags"] == list("abcdef") and ModelSpec.from_dict(index["spec"]) == RAW
    assert [p.name for p in sorted(out.glob("train-*.tfrecord"))] == index["files"]["train"]
    assert len(index["files"]["train"]) == 2


@pytest.mark.parametrize("windows", [3, "all"])
def test_raw_round_trip_gives_identical_windows(data, windows):
    _, splits, rates, _ = data
    out = _extract(data, RAW, "raw")
    audio_rows = _eval_rows(splits["train"], RAW, rates, windows)
    record_rows = _eval_rows(splits["train"], RAW, rates, windows, tfrecord_dir=str(out))
    assert len(audio_rows) == len(record_rows) > 0
    for (xa, ya, ca), (xr, yr, cr) in zip(audio_rows, record_rows):
        assert ca == cr
        np.testing.assert_array_equal(xa, xr)
        np.testing.assert_array_equal(ya, yr)


def test_fbank_round_trip_matches_within_tolerance_except_the_first_frame(data):
    _, splits, rates, _ = data
    out = _extract(data, FBANK, "fbank")
    for windows in (2, "all"):
        audio_rows = _eval_rows(splits["train"], FBANK, rates, windows)
        record_rows = _eval_rows(splits["train"], FBANK, rates, windows, tfrecord_dir=str(out))
        assert len(audio_rows) == len(record_rows) > 0
        for (xa, _, ca), (xr, _, cr) in zip(audio_rows, record_rows):
            assert ca == cr and xa.shape == xr.shape == FBANK.window_shape()
            # frame 0 is excluded by design: the audio path pre-emphasises from the window's first sample
            # (a step at the cut: broadband energy, large in a pure tone's empty high bins)
            assert np.abs(xa[1:] - xr[1:]).max() < REFERENCE_TOLERANCE


@pytest.mark.parametrize(
    ("spec", "fmt"), [(RAW, "windowed-raw"), (FBANK, "windowed-fbank"), (SUPERPOOL, "windowed-raw")]
)
def test_windowed_round_trip_equals_the_audio_path(data, spec, fmt):
    _, splits, rates, _ = data
    out = _extract(data, spec, fmt)
    audio_rows = _eval_rows(splits["test"], spec, rates, "all")
    record_rows = _eval_rows(splits["test"], spec, rates, "all", tfrecord_dir=str(out))
    assert len(audio_rows) == len(record_rows) > 0
    for (xa, _, ca), (xr, _, cr) in zip(audio_rows, record_rows):
        assert ca == cr and xa.shape == xr.shape == spec.input_shape()
        if fmt == "windowed-fbank":
            assert np.abs(xa - xr).max() < REFERENCE_TOLERANCE
        else:
            np.testing.assert_array_equal(xa, xr)


@pytest.mark.parametrize(
    ("spec", "fmt"), [(RAW, "raw"), (FBANK, "fbank"), (RAW, "windowed-raw"), (SUPERPOOL, "windowed-raw")]
)
def test_training_from_records_keeps_labels_with_clips(data, spec, fmt):
    _, splits, rates, freqs = data
    out = _extract(data, spec, fmt)
    clips = splits["train"]
    ds = train_dataset(clips, spec, batch_size=2, manifest=rates, seed=1, tfrecord_dir=str(out))
    seen = set()
    for x, y in ds.take(6):  # two passes over 6 clips
        assert x.shape == (2, *spec.input_shape())
        if spec.input == "raw":
            for window, labels in zip(x.numpy(), y.numpy()):
                clip = which_clip(window.reshape(-1), RATE, freqs)
                seen.add(clip)
                np.testing.assert_array_equal(labels, clips[clip].labels)
    if spec.input == "raw":
        assert seen == set(range(len(clips)))


def test_record_training_resume_and_rank_shards(data):
    _, splits, rates, freqs = data
    out = str(_extract(data, RAW, "raw"))
    clips = splits["train"]
    kw = dict(batch_size=2, manifest=rates, seed=4, deterministic=True, tfrecord_dir=out)
    full = [x.numpy() for x, _ in train_dataset(clips, RAW, **kw).take(8)]  # 3 steps per epoch
    for start in (2, 4):  # inside the first epoch, and in the second one (whole epoch skipped unread)
        resumed = [x.numpy() for x, _ in train_dataset(clips, RAW, start_step=start, **kw).take(3)]
        for a, b in zip(full[start : start + 3], resumed, strict=True):
            np.testing.assert_array_equal(a, b)

    # two ranks, two shard files: each rank reads one file; the clips are disjoint and complete
    per_rank = []
    for rank in range(2):
        ds = train_dataset(clips, RAW, rank=rank, size=2, **kw)
        per_rank.append({which_clip(w, RATE, freqs) for x, _ in ds.take(6) for w in x.numpy()})
    assert per_rank[0].isdisjoint(per_rank[1]) and per_rank[0] | per_rank[1] == set(range(6))
    assert steps_per_epoch(len(clips), 2, 2) == 1


def test_eval_from_records_is_sharded_like_the_audio_path(data):
    _, splits, rates, _ = data
    out = str(_extract(data, RAW, "raw"))
    clips = splits["train"]
    seen = [
        {c for _, _, c in _eval_rows(clips, RAW, rates, 1, tfrecord_dir=out, rank=r, size=2)}
        for r in range(2)
    ]
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(6))
    # records of clips not in the list are skipped; clip_index follows the list given
    subset = clips[3:]
    rows = _eval_rows(subset, RAW, rates, 1, tfrecord_dir=out)
    assert [c for _, _, c in rows] == [0, 1, 2]
    for _, y, c in rows:
        np.testing.assert_array_equal(y, subset[c].labels)


def test_incompatible_spec_and_missing_index_are_clear_errors(data, tmp_path):
    _, splits, rates, _ = data
    out = str(_extract(data, FBANK, "fbank"))
    other = ModelSpec(input="fbank", window=4096, fbank=FbankSpec(n_mels=64))
    with pytest.raises(ValueError, match="filterbank"):
        eval_dataset(splits["train"], other, batch_size=2, tfrecord_dir=out)
    with pytest.raises(FileNotFoundError, match="index.json"):
        eval_dataset(splits["train"], RAW, batch_size=2, tfrecord_dir=str(tmp_path))
    with pytest.raises(ValueError, match="windowed-raw"):
        tfrecord.extract(splits, FBANK, "windowed-raw", tmp_path / "x", manifest=rates, progress=False)


def test_training_from_records_after_a_global_seed_of_zero(data):
    """train.py calls keras.utils.set_random_seed(train.seed) (0 by default) before building the stream;
    a tensor-seeded Dataset.shuffle could not be traced then."""
    import keras

    _, splits, rates, _ = data
    out = str(_extract(data, RAW, "raw"))
    keras.utils.set_random_seed(0)
    kw = dict(batch_size=2, manifest=rates, seed=0, deterministic=True, tfrecord_dir=out)
    first = [x.numpy() for x, _ in train_dataset(splits["train"], RAW, **kw).take(6)]
    again = [x.numpy() for x, _ in train_dataset(splits["train"], RAW, **kw).take(6)]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first[:3], first[3:6]))  # epochs differ

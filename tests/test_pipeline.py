"""tf.data pipelines: labels follow clips, rank sharding, resume, determinism, window shapes.

Clips are tones of distinct frequencies, so the clip a window came from is read off its spectrum.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from pipeline_audio_fixtures import tone, tone_clips, which_clip, write_audio

from hvd_magtag import audio
from hvd_magtag.data.catalog import Clip
from hvd_magtag.data.pipeline import eval_dataset, steps_per_epoch, train_dataset
from hvd_magtag.models.registry import FbankSpec, ModelSpec

RATE = 16000
RAW = ModelSpec(input="raw", window=2048)
FBANK = ModelSpec(input="fbank", window=4096, fbank=FbankSpec(n_mels=32, win_length=512, hop_length=256))
SUPERPOOL = ModelSpec(input="raw", window=2048, windowing="superpool", n_windows=3)


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    """8 one-second 16 kHz mp3 tones (300, 400, ... 1000 Hz)."""
    return tone_clips(tmp_path_factory.mktemp("tones"), 8, seconds=1.0)


def _batches(ds, n):
    return [tuple(t.numpy() for t in b) for b in ds.take(n)]


def _clip_ids(batches, freqs):
    return [which_clip(w, RATE, freqs) for x, _ in batches for w in x]


def test_steps_per_epoch_floor_division():
    assert steps_per_epoch(100, 16, 1) == 6
    assert steps_per_epoch(100, 16, 2) == 3
    assert steps_per_epoch(10, 16, 1) == 0


def test_labels_out_of_the_pipeline_equal_the_clip_metadata_row(tones):
    clips, rates, freqs = tones
    batches = _batches(train_dataset(clips, RAW, batch_size=2, manifest=rates, seed=3), 8)
    for x, y in batches:
        assert x.shape == (2, 2048) and y.shape == (2, 6) and x.dtype == np.float32
        for window, labels in zip(x, y):
            np.testing.assert_array_equal(labels, clips[which_clip(window, RATE, freqs)].labels)


def test_two_ranks_get_disjoint_complete_shards_and_equal_steps(tones):
    clips, rates, freqs = tones
    batch, size = 2, 2
    spe = steps_per_epoch(len(clips), batch, size)  # 2
    per_rank = []
    for rank in range(size):
        ds = train_dataset(
            clips, RAW, batch_size=batch, manifest=rates, rank=rank, size=size, deterministic=True
        )
        per_rank.append(_clip_ids(_batches(ds, spe), freqs))  # one epoch
    assert all(len(ids) == spe * batch for ids in per_rank)
    assert set(per_rank[0]).isdisjoint(per_rank[1])
    assert sorted(per_rank[0] + per_rank[1]) == list(range(len(clips)))

    evals = [
        eval_dataset(clips, RAW, windows=2, batch_size=3, manifest=rates, rank=r, size=size) for r in range(2)
    ]
    seen = [np.concatenate([c.numpy() for _, _, c in ds]) for ds in evals]
    assert set(seen[0]).isdisjoint(seen[1])
    assert sorted(set(seen[0]) | set(seen[1])) == list(range(len(clips)))
    np.testing.assert_array_equal(np.unique(seen[0]), np.arange(0, len(clips), 2))  # clips[rank::size]


def test_uneven_split_still_gives_every_rank_the_same_steps(tones):
    clips, rates, freqs = tones
    clips7 = clips[:7]  # 7 clips, batch 2, 2 ranks -> 1 step per epoch, 3 clips left out each epoch
    for rank in range(2):
        ds = train_dataset(clips7, RAW, batch_size=2, manifest=rates, rank=rank, size=2, deterministic=True)
        ids = _clip_ids(_batches(ds, 4), freqs)  # 4 epochs
        assert len(ids) == 8 and all(i < 7 for i in ids)


def test_each_epoch_is_a_fresh_permutation(tones):
    clips, rates, freqs = tones
    ds = train_dataset(clips, RAW, batch_size=4, manifest=rates, seed=0, deterministic=True)
    ids = _clip_ids(_batches(ds, 6), freqs)  # 3 epochs of 8 clips
    epochs = [ids[i : i + 8] for i in range(0, 24, 8)]
    assert all(sorted(e) == list(range(8)) for e in epochs)
    assert len({tuple(e) for e in epochs}) == 3
    other = _clip_ids(_batches(train_dataset(clips, RAW, batch_size=4, manifest=rates, seed=1), 2), freqs)
    assert other != epochs[0]


def test_start_step_resume_equals_the_continued_stream(tones):
    clips, rates, _ = tones
    kw = dict(batch_size=3, manifest=rates, seed=5, deterministic=True, threads=2)  # 2 steps per epoch
    full = _batches(train_dataset(clips, RAW, **kw), 7)
    resumed = _batches(train_dataset(clips, RAW, start_step=3, **kw), 4)
    for (xf, yf), (xr, yr) in zip(full[3:], resumed):
        np.testing.assert_array_equal(xf, xr)
        np.testing.assert_array_equal(yf, yr)
    assert not np.array_equal(full[0][0], resumed[0][0])


def test_deterministic_mode_gives_identical_batches_twice(tones):
    clips, rates, _ = tones
    runs = [
        _batches(
            train_dataset(clips, FBANK, batch_size=4, manifest=rates, seed=2, deterministic=True, threads=2),
            4,
        )
        for _ in range(2)
    ]
    for (x1, y1), (x2, y2) in zip(*runs):
        assert x1.shape == (4, *FBANK.input_shape())
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)


def test_eval_window_rows_and_shapes(tones):
    clips, rates, freqs = tones
    rows = list(eval_dataset(clips[:3], RAW, windows="4", batch_size=5, manifest=rates).unbatch())
    assert len(rows) == 3 * 4
    for x, y, c in rows:
        assert x.shape == (2048,)
        assert which_clip(x.numpy(), RATE, freqs) == int(c)  # the row's clip_index is its clip
        np.testing.assert_array_equal(y.numpy(), clips[int(c)].labels)

    # "all": consecutive windows; a decoded 1 s mp3 is a little over 16000 samples -> 16000 // 2048 = 7 or 8
    counts = np.bincount(
        np.concatenate(
            [
                c.numpy()
                for _, _, c in eval_dataset(clips[:2], RAW, windows="all", batch_size=4, manifest=rates)
            ]
        )
    )
    assert list(counts) == [counts[0]] * 2 and 7 <= counts[0] <= 8

    fb = next(iter(eval_dataset(clips[:1], FBANK, windows=2, batch_size=8, manifest=rates)))
    assert fb[0].shape == (2, *FBANK.window_shape())


def test_superpool_models_get_one_row_per_clip(tones):
    clips, rates, _ = tones
    x, y, c = next(iter(eval_dataset(clips[:3], SUPERPOOL, windows="all", batch_size=8, manifest=rates)))
    assert x.shape == (3, 3, 2048) and y.shape == (3, 6)
    np.testing.assert_array_equal(c.numpy(), [0, 1, 2])
    xt, _ = next(iter(train_dataset(clips, SUPERPOOL, batch_size=2, manifest=rates)))
    assert xt.shape == (2, 3, 2048)


def test_short_clip_is_padded_and_mixed_formats_and_rates_decode(tmp_path):
    short = write_audio(tmp_path / "short.wav", tone(500.0, 0.05, RATE), RATE)  # 800 samples < one window
    fast = write_audio(tmp_path / "fast.mp3", tone(700.0, 0.5, 44100, channels=2), 44100)  # in-graph switches
    labels = np.eye(2, dtype=np.float32)
    clips = [Clip("s", short, labels[0], "test"), Clip("f", fast, labels[1], "test")]
    rates = {short: RATE, fast: 44100}
    rows = list(eval_dataset(clips, RAW, windows="all", batch_size=4, manifest=rates).unbatch())
    by_clip: dict[int, list[np.ndarray]] = {}
    for x, _, c in rows:
        by_clip.setdefault(int(c), []).append(x.numpy())
    fast_16k = audio.load(tf.constant(fast), "mp3", 44100, RATE).numpy()
    assert len(by_clip[0]) == 1 and len(by_clip[1]) == len(fast_16k) // 2048 >= 4  # 0.5 s + mp3 delay
    np.testing.assert_array_equal(by_clip[0][0][800:], 0.0)  # short: one zero-padded window
    assert np.abs(by_clip[0][0][:800]).max() > 0.3
    np.testing.assert_array_equal(np.concatenate(by_clip[1]), fast_16k[: len(by_clip[1]) * 2048])
    assert which_clip(by_clip[1][-1], RATE, [500.0, 700.0]) == 1


def test_too_few_clips_for_one_step_is_a_clear_error(tones):
    clips, rates, _ = tones
    with pytest.raises(ValueError, match="batch_size"):
        train_dataset(clips, RAW, batch_size=8, manifest=rates, size=2)


def test_missing_manifest_entry_names_the_file(tones):
    clips, _, _ = tones
    with pytest.raises(ValueError, match="clip000"):
        train_dataset(clips, RAW, batch_size=2, manifest={})


class _SniffingManifest:
    """The two Manifest methods the pipeline uses (rate, format), as hvd_magtag.data.manifest provides them."""

    def __init__(self, rates: dict[str, int], formats: dict[str, str]):
        self._rates, self._formats = rates, formats

    def rate(self, path: str) -> int:
        return self._rates[path]

    def format(self, path: str) -> str:
        return self._formats[path]


def test_the_manifest_sniffed_format_beats_a_wrong_extension(tmp_path):
    misnamed = tmp_path / "misnamed.mp3"  # WAV bytes behind an .mp3 name
    write_audio(tmp_path / "really.wav", tone(600.0, 0.3, RATE), RATE)
    (tmp_path / "really.wav").rename(misnamed)
    clips = [Clip("m", str(misnamed), np.ones(2, np.float32), "test")]
    manifest = _SniffingManifest({str(misnamed): RATE}, {str(misnamed): "wav"})
    x, _, _ = next(iter(eval_dataset(clips, RAW, windows=1, batch_size=1, manifest=manifest)))
    assert which_clip(x.numpy()[0], RATE, [300.0, 600.0, 900.0]) == 1


def test_pipeline_reads_rates_from_a_validated_manifest(tmp_path):
    from hvd_magtag.data.catalog import Catalog
    from hvd_magtag.data.manifest import validate

    fast = write_audio(tmp_path / "fast.mp3", tone(700.0, 1.0, 44100, channels=2), 44100)
    slow = write_audio(tmp_path / "slow.mp3", tone(500.0, 1.0, RATE), RATE)
    labels = np.eye(2, dtype=np.float32)
    catalog = Catalog(
        "t",
        str(tmp_path),
        ["a", "b"],
        [Clip("f", fast, labels[0], "test"), Clip("s", slow, labels[1], "test")],
    )
    catalog, manifest = validate(catalog, cache_dir=tmp_path / "cache", workers=1)
    assert manifest.rate(fast) == 44100
    rows = list(eval_dataset(catalog.clips, RAW, windows=1, batch_size=2, manifest=manifest).unbatch())
    freqs = {int(c): which_clip(x.numpy(), RATE, [500.0, 700.0]) for x, _, c in rows}
    assert freqs == {0: 1, 1: 0}  # 44.1 kHz stereo resampled: its tone stays at 700 Hz


@pytest.mark.multirank
def test_real_two_rank_job_reads_disjoint_complete_shards_in_lockstep(tones, tmp_path, horovodrun):
    import json

    from multirank.runner import check_ok, run_horovod

    clips, rates, freqs = tones
    data = tmp_path / "data.json"
    data.write_text(
        json.dumps(
            {
                "clips": [{"id": c.clip_id, "path": c.path, "labels": c.labels.tolist()} for c in clips],
                "rates": rates,
                "freqs": freqs,
            }
        )
    )
    script = Path(__file__).parent / "multirank" / "pipeline_shards.py"
    check_ok(run_horovod(script, np=2, args=["--data", data, "--out", tmp_path], timeout=300))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    spe, batch = ranks[0]["spe"], 2
    assert spe == steps_per_epoch(8, batch, 2) == 2
    for r in ranks:
        assert r["steps"] == 2 * spe * 2  # each of the 2*spe steps summed 1.0 over 2 ranks
        assert len(r["train"]) == 2 * spe * batch
    for epoch in range(2):
        per_rank = [r["train"][epoch * spe * batch : (epoch + 1) * spe * batch] for r in ranks]
        assert set(per_rank[0]).isdisjoint(per_rank[1])
        assert sorted(per_rank[0] + per_rank[1]) == list(range(8))
    assert ranks[0]["eval"] == [0, 2, 4, 6] and ranks[1]["eval"] == [1, 3, 5, 7]

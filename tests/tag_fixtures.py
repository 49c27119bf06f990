"""Tiny run directories and audio files for the tagging and export tests (test_tag.py, test_export.py).

The tagging model is a registered SampleCNN shrunk to a 3^7 = 2187-sample window (0.14 s at 16 kHz) and 5 %
of the channels, trained for a few dozen Adam steps on tones with SOFT targets (a low tone -> "low" 0.85,
"high" 0.15, "tonal" 0.5; a high tone the reverse) so that its clip probabilities are separated by design
(~0.35 apart) and a comparison of top-3 orders is not decided by rounding noise. It trains in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: the fixture model's vocabulary (output order)
TAGS = ["low", "high", "tonal"]
#: registered model and overrides of the fixture run (window 3^(6+1) = 2187 samples)
MODEL = "samplecnn"
OVERRIDES = {"m": 3, "n": 6, "width": 0.05}
#: frequencies (Hz) of the fixture's low and high tones
LOW_HZ, HIGH_HZ = 300.0, 2500.0
#: soft training targets per tone, in TAGS order
TARGETS = {LOW_HZ: [0.85, 0.15, 0.5], HIGH_HZ: [0.15, 0.85, 0.5]}
RATE = 16000
#: Adam steps of the fixture model (enough for the soft targets: loss ~0.53 vs 0.69 at chance)
TRAIN_STEPS = 40


def tone(
    freq: float, seconds: float, rate: int = RATE, amplitude: float = 0.4, noise: float = 0.02, seed: int = 0
):
    """float32 ``[samples]`` sine at ``freq`` Hz plus a little white noise."""
    t = np.arange(int(round(seconds * rate))) / rate
    rng = np.random.default_rng(seed)
    return (amplitude * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)


def encode(samples: np.ndarray, rate: int, fmt: str) -> bytes:
    """Encode float32 ``[samples]`` or ``[samples, channels]`` as mp3 | wav (16-bit) | flac (16-bit) | ogg."""
    import tensorflow as tf
    import tensorflow_io as tfio

    x = np.asarray(samples, np.float32)
    x = x[:, None] if x.ndim == 1 else x
    if fmt == "mp3":
        data = tfio.audio.encode_mp3(x, rate=rate)
    elif fmt == "wav":
        data = tf.audio.encode_wav(x, rate)
    elif fmt == "flac":
        data = tfio.audio.encode_flac(tf.cast(tf.round(x * 32767), tf.int16), rate=rate)
    elif fmt == "ogg":
        data = tfio.audio.encode_vorbis(x, rate=rate)
    else:
        raise ValueError(f"fixtures encode mp3 | wav | flac | ogg, not {fmt!r}")
    return data.numpy()


def write(path: Path, samples: np.ndarray, rate: int) -> Path:
    path.write_bytes(encode(samples, rate, path.suffix.lstrip(".")))
    return path


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def make_run(
    run_dir: Path,
    *,
    model: str = MODEL,
    overrides: dict | None = None,
    tags: list[str] | None = None,
    train_steps: int = 0,
    seed: int = 0,
) -> Path:
    """A run directory as hvd_magtag.train writes it (run.json + best/model.weights.h5) for ``model``.

    ``train_steps`` > 0 fits the model to :data:`TARGETS` on random windows of the two tones (Adam, lr 1e-2).
    """
    import keras
    import tensorflow as tf

    from hvd_magtag.models.registry import create_model
    from hvd_magtag.rundir import RunDir

    overrides = dict(OVERRIDES if overrides is None else overrides)
    tags = list(TAGS if tags is None else tags)
    keras.utils.set_random_seed(seed)
    net = create_model(model, n_tags=len(tags), **overrides)
    spec = net.spec
    if train_steps:
        rng = np.random.default_rng(seed)
        signals = {f: tone(f, 2.0, spec.sample_rate, seed=i) for i, f in enumerate(TARGETS)}
        optimizer = keras.optimizers.Adam(1e-2)
        loss_fn = keras.losses.BinaryCrossentropy()

        @tf.function
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, net(x, training=True))
            optimizer.apply_gradients(
                zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables)
            )
            return loss

        for _ in range(train_steps):
            xs, ys = [], []
            for f, sig in signals.items():
                for start in rng.integers(0, sig.size - spec.window, 8):
                    xs.append(sig[start : start + spec.window])
                    ys.append(TARGETS[f])
            loss = step(np.stack(xs), np.asarray(ys, np.float32))
        # Too few steps for BatchNorm's moving statistics (momentum 0.99) to converge: set them to the
        # statistics of one large batch, so inference behaves like the trained (training-mode) network.
        bns = [layer for layer in _all_layers(net) if isinstance(layer, keras.layers.BatchNormalization)]
        for layer in bns:
            layer.momentum = 0.0
        net(np.stack(xs), training=True)
        for layer in bns:
            layer.momentum = 0.99
        assert float(loss) < 0.6, f"fixture model did not fit its targets (loss {float(loss):.3f})"
    run = RunDir(run_dir)
    run.best_weights.parent.mkdir(parents=True, exist_ok=True)
    net.save_weights(str(run.best_weights))
    run.write_run_info({"model": model, "overrides": overrides, "spec": spec.to_dict(), "tags": tags})
    return run.path


_CACHE: dict[str, Path] = {}


def trained_run(tmp_path_factory) -> Path:
    """The trained fixture run (built once per pytest session, shared by test_tag and test_export)."""
    if "trained" not in _CACHE:
        _CACHE["trained"] = make_run(tmp_path_factory.mktemp("tag_run") / "run", train_steps=TRAIN_STEPS)
    return _CACHE["trained"]

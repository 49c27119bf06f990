"""musicnn's two architectures (Pons & Serra 2019), as Keras 3 models whose weights the released checkpoints fill.

- ``musicnn``: musically motivated front-end (timbral 7x38 / 7x67 convs over mel x time, temporal 128 / 64 / 32
  x 1 convs over time, each max-pooled over frequency), a dense mid-end of three 7-frame 1-D convs with
  residual connections, a back-end of max + mean pooling over time, Dense(200) and the tag layer
  (MTT_musicnn / MSD_musicnn; ``midend_filters=512, backend_units=500`` is MSD_musicnn_big).
- ``vgg_musicnn``: musicnn's VGG baseline, five 3x3 conv blocks of 128 channels (MTT_vgg / MSD_vgg).

Both read 3 s of 16 kHz audio as 187 frames of musicnn's log-mel (:data:`MUSICNN_FBANK`: librosa's
melspectrogram recipe, 512-point STFT, hop 256, 96 Slaney mel bands with Slaney area normalisation,
``log10(1 + 10000 x)``), computed in graph by :func:`hvd_magtag.features.features_for`. As in musicnn, every
conv applies ReLU *before* its batch norm, and the batch norms have Keras's (and TF1's) defaults (momentum
0.99, epsilon 1e-3). Output ``tags`` [B, n_tags] sigmoid; ``embedding`` is musicnn's "penultimate" (musicnn)
or the flattened last pooling (vgg). :mod:`hvd_magtag.pretrained` maps the released checkpoints onto these
layers (its docstring has the variable-by-variable table).

Layer names: ``block{i}_{branch}_{conv|bn|pool}`` for musicnn's front-end (1-2 timbral, 3-5 temporal) and mid-end
(6-8, with ``_res`` adds), ``conv{i}`` / ``conv{i}_bn`` / ``conv{i}_pool`` for the VGG.

No TensorFlow at import time; builders import Keras lazily.
"""

from __future__ import annotations

from hvd_magtag.errors import ConfigError
from hvd_magtag.models.names import EMBEDDING_LAYER
from hvd_magtag.models.registry import register_model
from hvd_magtag.models.spec import DEFAULT_SAMPLE_RATE, FbankSpec, ModelSpec

#: musicnn's front end: ``librosa.feature.melspectrogram(sr=16000, hop_length=256, n_fft=512, n_mels=96)``
#: (Hann window, centred frames with zero padding, power 2, Slaney mel scale and normalisation), then
#: ``log10(10000 x + 1)`` (musicnn.extractor.batch_data).
MUSICNN_FBANK = FbankSpec(
    n_mels=96,
    win_length=512,
    hop_length=256,
    n_fft=512,
    preemph=0.0,
    filters="librosa",
    window_fn="hann",
    center=True,
    mel_scale="slaney",
    mel_norm="slaney",
    log="log10_1p",
    log_gain=10000.0,
)
#: Frames per input patch: ``librosa.time_to_frames(3 s, sr=16000, n_fft=512, hop_length=256) + 1``.
MUSICNN_FRAMES = 187
#: 187 frames = 47,872 samples (2.992 s): consecutive windows tile the clip's frame grid (see features.py).
MUSICNN_SPEC = ModelSpec(
    input="fbank",
    sample_rate=DEFAULT_SAMPLE_RATE,
    window=MUSICNN_FRAMES * MUSICNN_FBANK.hop_length,
    fbank=MUSICNN_FBANK,
)

#: musicnn front-end: timbral (time, freq) kernels (7 x int(0.4 * 96), 7 x int(0.7 * 96)) with int(1.6 * 128)
#: filters, temporal kernels (128, 64, 32) x 1 with int(1.6 * 32) filters.
TIMBRAL_KERNELS = ((7, 38), (7, 67))
TIMBRAL_FILTERS = 204
TEMPORAL_KERNELS = (128, 64, 32)
TEMPORAL_FILTERS = 51
#: mid-end: three 7-frame convs (the released MTT/MSD models: 64 filters; MSD_musicnn_big: 512)
MIDEND_KERNEL = 7
MIDEND_LAYERS = 3
#: VGG baseline: (time, freq) max-pool sizes and strides of its five blocks (pool 1 overlaps in time)
VGG_POOLS = (((4, 1), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((2, 2), (2, 2)), ((4, 4), (4, 4)))


def _conv_relu_bn_freqpool(x, filters: int, kernel: tuple[int, int], padding: str, *, name: str):
    """musicnn's front-end branch: Conv2D + ReLU, BN, max over all remaining frequency bins, squeezed:
    ``[B, T, F, 1] -> [B, T, F', filters] -> [B, T, filters]``."""
    import keras

    from hvd_magtag.models.layers import FusedBatchNorm

    x = keras.layers.Conv2D(filters, kernel, padding=padding, activation="relu", name=f"{name}_conv")(x)
    x = FusedBatchNorm(name=f"{name}_bn")(x)
    frames, bins = x.shape[1], x.shape[2]
    x = keras.layers.MaxPooling2D((1, bins), name=f"{name}_pool")(x)  # [B, T, 1, filters]
    return keras.layers.Reshape((frames, filters), name=f"{name}_squeeze")(x)


@register_model(spec=MUSICNN_SPEC, paper="Pons & Serra 2019 (ISMIR LBD), musicnn")
def musicnn(
    spec: ModelSpec,
    n_tags: int,
    *,
    width: float = 1.0,
    midend_filters: int = 64,
    backend_units: int = 200,
):
    """musicnn: timbral + temporal front-end, dense residual mid-end, max + mean temporal pooling back-end.

    ``[B, 187, 96] -> front-end [B, 187, 204 + 204 + 51 x 3 = 561] -> mid-end 3 x [B, 187, 64], concatenated
    with the front-end [B, 187, 753] -> max and mean over time [B, 1506] -> BN, Dropout 0.5 -> Dense(200) +
    ReLU -> BN ``embedding`` [B, 200] -> Dropout 0.5 -> Dense sigmoid ``tags`` [B, n_tags]``
    (at 50 tags: 792,079 parameters in 64 variables, 787,159 trainable: MTT_musicnn's checkpoint exactly).
    Timbral convs see 3 zero frames either side (time-only "same"), temporal convs are "same" in both axes.
    """
    import keras

    from hvd_magtag.models import blocks
    from hvd_magtag.models.layers import FastConv1D, FusedBatchNorm

    inputs, x = blocks.logmel_input(spec, freq_bn=False)
    branches = []
    padded = keras.layers.ZeroPadding2D(((3, 3), (0, 0)), name="timbral_pad")(x)  # [B, T + 6, 96, 1]
    for i, (kt, kf) in enumerate(TIMBRAL_KERNELS, start=1):
        filters = blocks.scaled(TIMBRAL_FILTERS, width)
        branch = _conv_relu_bn_freqpool(
            padded, filters, (kt, kf), "valid", name=f"block{i}_timbral_{kt}x{kf}"
        )
        branches.append(branch)  # [B, T, 96 - kf + 1, 204] -> [B, T, 204]
    for i, kt in enumerate(TEMPORAL_KERNELS, start=len(TIMBRAL_KERNELS) + 1):
        filters = blocks.scaled(TEMPORAL_FILTERS, width)
        branches.append(_conv_relu_bn_freqpool(x, filters, (kt, 1), "same", name=f"block{i}_temporal_{kt}"))
        # [B, T, 96, 51] -> [B, T, 51]
    frontend = keras.layers.Concatenate(axis=-1, name="frontend")(branches)  # [B, T, 561]

    features, y = [frontend], frontend
    first = len(TIMBRAL_KERNELS) + len(TEMPORAL_KERNELS) + 1
    for i in range(first, first + MIDEND_LAYERS):
        name = f"block{i}_midend"
        z = FastConv1D(
            blocks.scaled(midend_filters, width),
            MIDEND_KERNEL,
            padding="same",
            activation="relu",
            name=f"{name}_conv",
        )(y)
        z = FusedBatchNorm(name=f"{name}_bn")(z)  # [B, T, 64]
        y = z if i == first else keras.layers.Add(name=f"{name}_res")([z, y])
        features.append(y)
    midend = keras.layers.Concatenate(axis=-1, name="midend")(features)  # [B, T, 753]

    max_pool = keras.layers.GlobalMaxPooling1D(name="max_pool")(midend)  # [B, 753]
    mean_pool = keras.layers.GlobalAveragePooling1D(name="mean_pool")(midend)  # [B, 753]
    x = keras.layers.Concatenate(axis=-1, name="temporal_pool")([max_pool, mean_pool])  # [B, 1506]
    x = FusedBatchNorm(name="temporal_pool_bn")(x)
    x = keras.layers.Dropout(0.5, name="temporal_pool_dropout")(x)
    x = keras.layers.Dense(blocks.scaled(backend_units, width), activation="relu", name="penultimate")(x)
    emb = FusedBatchNorm(name=EMBEDDING_LAYER)(x)  # [B, 200]
    return keras.Model(inputs, blocks.tag_head(emb, n_tags, dropout=0.5), name="musicnn")


@register_model(spec=MUSICNN_SPEC, paper="Pons & Serra 2019 (ISMIR LBD), musicnn's VGG baseline")
def vgg_musicnn(spec: ModelSpec, n_tags: int, *, width: float = 1.0):
    """musicnn's VGG: five 3x3 conv (128, ReLU) - BN - max-pool blocks, Dropout 0.25 after blocks 1-4, the
    last pooling flattened as ``embedding``, Dropout 0.5, Dense sigmoid ``tags``.

    ``[B, 187, 96] -> (4,1)/2 [92, 48] -> [46, 24] -> [23, 12] -> [11, 6] -> (4,4)/4 [2, 1] x 128 -> embedding
    [B, 256] -> tags [B, n_tags]`` (pooling "valid", so the input needs >= 70 frames; at 50 tags 607,030
    parameters in 36 variables, as MTT_vgg's checkpoint).
    """
    import keras

    from hvd_magtag.models import blocks
    from hvd_magtag.models.layers import FusedBatchNorm

    inputs, x = blocks.logmel_input(spec, freq_bn=False)
    t, f = spec.window_shape()
    for (pt, pf), (st, sf) in VGG_POOLS:
        t, f = (t - pt) // st + 1, (f - pf) // sf + 1
    if t < 1 or f < 1:
        raise ConfigError(
            f"vgg_musicnn: input {spec.window_shape()} (frames, mels) is too small; raise window"
        )
    for i, (pool, strides) in enumerate(VGG_POOLS, start=1):
        x = keras.layers.Conv2D(
            blocks.scaled(128, width), 3, padding="same", activation="relu", name=f"conv{i}"
        )(x)
        x = FusedBatchNorm(name=f"conv{i}_bn")(x)
        x = keras.layers.MaxPooling2D(pool, strides, name=f"conv{i}_pool")(x)
        if i < len(VGG_POOLS):
            x = keras.layers.Dropout(0.25, name=f"conv{i}_dropout")(x)
        # [187, 96] -> [92, 48] -> [46, 24] -> [23, 12] -> [11, 6] -> [2, 1]
    emb = keras.layers.Flatten(name=EMBEDDING_LAYER)(x)  # [B, 256]
    return keras.Model(inputs, blocks.tag_head(emb, n_tags, dropout=0.5), name="vgg_musicnn")

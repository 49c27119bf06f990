"""Filterbank (log-mel) models: FCN-4 (Choi et al. 2016), CRNN (Choi et al. 2017), and the short-chunk
CNN and ResNet of Won et al. 2020.

Inputs are log-mel frames ``[B, frames, n_mels]`` computed in graph from the waveform by
:func:`hvd_magtag.features.features_for` with the model's :class:`FbankSpec` (at 16 kHz); the models add
the channel axis themselves (``[B, T, F, 1]``, time first). Output ``tags`` ``[B, n_tags]`` sigmoid; the
vector the classifier reads is the layer ``embedding``; convs are ``conv{i}`` / ``block{i}_...`` in
input-to-output order. Every builder accepts ``width`` (channel multiplier); those with pooling layers
also accept ``pool`` ("max" | "stochastic").

Frame geometry at 16 kHz (python_speech_features framing, see ``FbankSpec.n_frames``):

- Choi et al. (FCN-4, CRNN): 96 mels, 512-sample FFT/window, 256-sample hop — the papers' STFT in
  samples (they ran at 12 kHz, so a frame here is 16 ms instead of 21.3 ms) — over a 29.1 s window
  (465,600 samples, 1,818 frames; the papers' 1,366 frames were the same 29.1 s at 12 kHz).
- Won et al. 2020 short-chunk models: 59,049 samples (3.69 s), 128 mels, 512-sample FFT, 256-sample hop
  -> 230 frames.

Importing this module imports no TensorFlow (it only declares specs and options); builders import Keras
and :mod:`hvd_magtag.models.blocks` when called.
"""

from __future__ import annotations

from hvd_magtag.errors import ConfigError
from hvd_magtag.models.names import EMBEDDING_LAYER
from hvd_magtag.models.registry import register_model
from hvd_magtag.models.spec import DEFAULT_SAMPLE_RATE, FbankSpec, ModelSpec

#: Choi et al. 2016/2017 mel-spectrogram parameters (samples) and clip-length window (s)
CHOI_FBANK = FbankSpec(n_mels=96, win_length=512, hop_length=256, n_fft=512)
CHOI_WINDOW_SECONDS = 29.1
CHOI_SPEC = ModelSpec(
    input="fbank",
    sample_rate=DEFAULT_SAMPLE_RATE,
    window=int(round(CHOI_WINDOW_SECONDS * DEFAULT_SAMPLE_RATE)),
    fbank=CHOI_FBANK,
)

#: Won et al. 2020 short-chunk parameters: 59,049-sample (3.69 s) chunks, 128 mels
WON_FBANK = FbankSpec(n_mels=128, win_length=512, hop_length=256, n_fft=512)
WON_SPEC = ModelSpec(input="fbank", sample_rate=DEFAULT_SAMPLE_RATE, window=59049, fbank=WON_FBANK)
#: Won et al. 2020's dense layer before the classifier (units)
WON_EMBEDDING_UNITS = 512


def _check_pools(spec: ModelSpec, pools: list[tuple[int, int]], name: str) -> None:
    t, f = spec.window_shape()
    for pt, pf in pools:
        t, f = t // pt, f // pf
    if t < 1 or f < 1:
        raise ConfigError(
            f"{name}: input {spec.window_shape()} (frames, mels) is too small for its pooling; raise window"
        )


#: FCN-4 channels and (time, freq) max-pool sizes (Choi et al. 2016, Table 1; the paper lists (freq, time))
FCN4_CHANNELS = (128, 384, 768, 2048)
FCN4_POOLS = ((4, 2), (5, 4), (8, 3), (8, 4))


@register_model(spec=CHOI_SPEC, paper="Choi, Fazekas & Sandler 2016 (ISMIR), FCN-4")
def fcn4(spec: ModelSpec, n_tags: int, *, width: float = 1.0, pool: str = "max"):
    """FCN-4: four 3x3 conv-BN-ReLU-maxpool layers (128, 384, 768, 2048 channels) on a 96-mel, 29.1 s
    log-mel, global max ``embedding`` [B, 2048 w], Dense sigmoid ``tags``.

    ``[B, 1818, 96] -> (4,2) [454, 48] -> (5,4) [90, 12] -> (8,3) [11, 4] -> (8,4) [1, 1] -> [B, n_tags]``.
    """
    import keras

    from hvd_magtag.models import blocks

    _check_pools(spec, list(FCN4_POOLS), "fcn4")
    inputs, x = blocks.logmel_input(spec, freq_bn=True)
    for i, (channels, size) in enumerate(zip(FCN4_CHANNELS, FCN4_POOLS), start=1):
        x = blocks.conv_bn_relu(x, blocks.scaled(channels, width), 3, name=f"conv{i}", dims=2)
        x = blocks.pool2d(x, size, pool, name=f"conv{i}_pool")
        # [1818, 96] -> [454, 48] -> [90, 12] -> [11, 4] -> [1, 1]
    emb = keras.layers.GlobalMaxPooling2D(name=EMBEDDING_LAYER)(x)
    return keras.Model(inputs, blocks.tag_head(emb, n_tags), name="fcn4")


#: CRNN conv channels and (time, freq) pools (Choi et al. 2017, 0.4 M-parameter configuration)
CRNN_CHANNELS = (64, 128, 128, 128)
CRNN_POOLS = ((2, 2), (3, 3), (4, 4), (4, 4))


@register_model(spec=CHOI_SPEC, paper="Choi, Fazekas, Sandler & Cho 2017 (ICASSP), CRNN")
def crnn(spec: ModelSpec, n_tags: int, *, gru_units: int = 32, width: float = 1.0, pool: str = "max"):
    """CRNN: four 3x3 conv-BN-ELU-maxpool-dropout(0.1) layers (64, 128, 128, 128) reduce the 96 mel bands
    to 1, two GRUs (32 units each) summarise the remaining time steps, Dropout 0.3, Dense sigmoid.

    ``[B, 1818, 96] -> [909, 48] -> [303, 16] -> [75, 4] -> [18, 1] x 128 -> GRU -> GRU embedding
    [B, 32 w] -> tags [B, n_tags]``. Input batch-norm is per mel band (the reference Keras code normalised
    along its time axis).
    """
    import keras

    from hvd_magtag.models import blocks, layers

    _check_pools(spec, list(CRNN_POOLS), "crnn")
    inputs, x = blocks.logmel_input(spec, freq_bn=True)
    for i, (channels, size) in enumerate(zip(CRNN_CHANNELS, CRNN_POOLS), start=1):
        x = keras.layers.Conv2D(blocks.scaled(channels, width), 3, padding="same", name=f"conv{i}")(x)
        x = layers.FusedBatchNorm(name=f"conv{i}_bn")(x)
        x = keras.layers.ELU(name=f"conv{i}_elu")(x)
        x = blocks.pool2d(x, size, pool, name=f"conv{i}_pool")
        x = keras.layers.Dropout(0.1, name=f"conv{i}_dropout")(x)
        # [1818, 96] -> [909, 48] -> [303, 16] -> [75, 4] -> [18, 1]
    steps, bands, channels = x.shape[1:]
    x = keras.layers.Reshape((steps, bands * channels), name="to_sequence")(x)  # [B, 18, 128 w]
    units = blocks.scaled(gru_units, width)
    x = keras.layers.GRU(units, return_sequences=True, name="gru1")(x)
    emb = keras.layers.GRU(units, name=EMBEDDING_LAYER)(x)
    return keras.Model(inputs, blocks.tag_head(emb, n_tags, dropout=0.3), name="crnn")


#: Won et al. 2020 short-chunk channel plan (7 layers; n_channels = 128)
SHORTCHUNK_CHANNELS = (128, 128, 256, 256, 256, 256, 512)


@register_model(spec=WON_SPEC, paper="Won, Ferraro, Bogdanov & Serra 2020 (SMC), short-chunk CNN")
def shortchunk_cnn(spec: ModelSpec, n_tags: int, *, width: float = 1.0, pool: str = "max"):
    """Short-chunk CNN: seven 3x3 conv-BN-ReLU-maxpool(2x2) layers (128, 128, 256 x 4, 512) on 3.69 s of
    128-mel log-mel, global max over the remaining time, Dense(512)+BN+ReLU ``embedding``, Dropout 0.5,
    Dense sigmoid.

    ``[B, 230, 128] -> [115, 64] -> [57, 32] -> [28, 16] -> [14, 8] -> [7, 4] -> [3, 2] -> [1, 1] x 512
    -> embedding [B, 512 w] -> tags [B, n_tags]``.
    """
    import keras

    from hvd_magtag.models import blocks

    _check_pools(spec, [(2, 2)] * len(SHORTCHUNK_CHANNELS), "shortchunk_cnn")
    inputs, x = blocks.logmel_input(spec, freq_bn=False)
    for i, channels in enumerate(SHORTCHUNK_CHANNELS, start=1):
        x = blocks.conv_bn_relu(x, blocks.scaled(channels, width), 3, name=f"conv{i}", dims=2)
        x = blocks.pool2d(x, (2, 2), pool, name=f"conv{i}_pool")
        # [230, 128] -> [115, 64] -> [57, 32] -> [28, 16] -> [14, 8] -> [7, 4] -> [3, 2] -> [1, 1]
    x = keras.layers.GlobalMaxPooling2D(name="global_pool")(x)
    emb = blocks.dense_embedding(x, blocks.scaled(WON_EMBEDDING_UNITS, width))
    return keras.Model(inputs, blocks.tag_head(emb, n_tags, dropout=0.5), name="shortchunk_cnn")


@register_model(spec=WON_SPEC, paper="Won, Ferraro, Bogdanov & Serra 2020 (SMC), short-chunk ResNet")
def shortchunk_resnet(spec: ModelSpec, n_tags: int, *, width: float = 1.0):
    """Short-chunk ResNet: seven residual blocks (two 3x3 convs, the first with stride 2; 3x3 strided
    shortcut conv) with 128, 128, 256 x 4, 512 channels, global max over time, Dense(512)+BN+ReLU
    ``embedding``, Dropout 0.5, Dense sigmoid.

    ``[B, 230, 128] -> [115, 64] -> [58, 32] -> [29, 16] -> [15, 8] -> [8, 4] -> [4, 2] -> [2, 1] x 512
    -> embedding [B, 512 w] -> tags [B, n_tags]``.
    """
    import keras

    from hvd_magtag.models import blocks

    inputs, x = blocks.logmel_input(spec, freq_bn=False)
    for i, channels in enumerate(SHORTCHUNK_CHANNELS, start=1):
        x = blocks.residual_block_2d(x, blocks.scaled(channels, width), name=f"block{i}", strides=2)
        # [230, 128] -> [115, 64] -> [58, 32] -> [29, 16] -> [15, 8] -> [8, 4] -> [4, 2] -> [2, 1]
    x = keras.layers.GlobalMaxPooling2D(name="global_pool")(x)
    emb = blocks.dense_embedding(x, blocks.scaled(WON_EMBEDDING_UNITS, width))
    return keras.Model(inputs, blocks.tag_head(emb, n_tags, dropout=0.5), name="shortchunk_resnet")

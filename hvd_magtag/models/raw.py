"""Raw-waveform models: the SampleCNN family (Lee et al. 2017; Kim, Lee & Nam 2018), a raw CRNN and
a window-superpooling SampleCNN.

Inputs are waveform windows ``[B, window]`` (samples at ``spec.sample_rate`` Hz; the models add the
channel axis themselves); superpool models take all windows of a clip ``[B, n_windows, window]``.
Outputs are per-tag sigmoid probabilities ``[B, n_tags]`` from the Dense layer ``tags``; the feature
vector the classifier reads is the layer ``embedding`` (:mod:`hvd_magtag.models.names`). Conv layers are
``conv0`` (the strided "sample-level" frame conv), then blocks ``block1_...`` .. ``blockN_...`` in
input-to-output order.

SampleCNN m^n (Lee et al. 2017, "Sample-level deep convolutional neural networks for music auto-tagging
using raw waveforms"): input m^(n+1) samples; ``conv0`` m filters-wide, stride m; n blocks of
Conv1D(m, "same") + BN + ReLU + MaxPool(m); Conv1D(1) + BN + ReLU; Dropout 0.5; Dense sigmoid.
The 3^9 model (59,049 samples = 3.69 s at 16 kHz), channels 128 | 128,128,256,256,256,256,256,256,512 |
512, has **1,869,874 trainable parameters with 50 tags** (= ``SAMPLECNN_3_9_PARAMS_50_TAGS``): conv
weights + biases 1,838,336, BatchNorm scale + offset 5,888, dense 25,650 — the paper's Table 1 count
(1,863,986, BN not counted) plus the BN parameters. Keras' ``count_params()`` adds 5,888 non-trainable
BN moving statistics (1,875,762 in all).

Every builder accepts ``width`` (float channel multiplier, default 1.0: tiny test models use ~0.06) and
``pool`` ("max" | "stochastic", Zeiler & Fergus 2013) for every pooling layer inside the blocks.

Importing this module imports no TensorFlow (it only declares specs and options); builders import Keras
and :mod:`hvd_magtag.models.blocks` when called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hvd_magtag.errors import ConfigError
from hvd_magtag.models.names import (
    EMBEDDING_LAYER,
    FOLD_WINDOWS,
    FRAME_CONV,
    UNFOLD_WINDOWS,
    WINDOW_ENCODER,
    WINDOW_POOL,
)
from hvd_magtag.models.registry import register_model
from hvd_magtag.models.spec import DEFAULT_SAMPLE_RATE, ModelSpec

#: trainable parameters of SampleCNN 3^9 with 50 tags (see module docstring; checked by tests)
SAMPLECNN_3_9_PARAMS_50_TAGS = 1_869_874

#: Lee et al. 2017 channel plan for the 3^9 model (frame conv, 9 blocks, 1x1 conv)
SAMPLECNN_FRAME_CHANNELS = 128
SAMPLECNN_TOP_CHANNELS = 512

#: windows per clip of the superpool SampleCNN: 7 x 3.69 s = 25.8 s covers most of an MTAT clip (29.1 s)
SUPERPOOL_N_WINDOWS = 7

#: ``block(x, channels, name) -> x``: one SampleCNN block, ``[B, T, C] -> [B, T // m, channels]``
Block = Callable[..., object]


def samplecnn_block_channels(n: int) -> list[int]:
    """Channels of the n blocks: 128, 128, then 256 ..., last 512 (n = 9 gives Lee et al.'s 3^9 plan)."""
    if n < 1:
        raise ConfigError(f"SampleCNN override n (number of blocks) must be >= 1, got {n}")
    return [128 if i < 2 else 256 for i in range(n - 1)] + [512]


def samplecnn_window(m: int, n: int) -> int:
    """Input length (samples) of the m^n model: m^(n+1) (frame conv stride m, then n pools of m)."""
    if m < 2:
        raise ConfigError(f"SampleCNN override m (filter/pool size) must be >= 2, got {m}")
    return m ** (n + 1)


def _samplecnn_spec(m: int, n: int, windowing: str = "split", n_windows: int = 1) -> ModelSpec:
    return ModelSpec(
        input="raw",
        sample_rate=DEFAULT_SAMPLE_RATE,
        window=samplecnn_window(m, n),
        windowing=windowing,
        n_windows=n_windows,
    )


def _mn_spec(default_m: int, default_n: int):
    """spec_from_overrides for the m^n family: window = m^(n+1)."""

    def spec_from_overrides(spec: ModelSpec, m: int = default_m, n: int = default_n) -> ModelSpec:
        return spec.replace(window=samplecnn_window(m, n))

    return spec_from_overrides


def _check_frames(spec: ModelSpec, m: int, n_pools: int, name: str) -> None:
    frames = spec.window // m
    for _ in range(n_pools):
        frames //= m
    if frames < 1:
        raise ConfigError(
            f"{name}: window {spec.window} samples is too short for m={m} with {n_pools} pooling blocks "
            f"(needs >= {m ** (n_pools + 1)}); raise window or lower n"
        )


def _samplecnn_trunk(x, m: int, n: int, width: float, block: Block):
    """Frame conv ``conv0`` + n blocks: ``[B, m^(n+1), 1] -> [B, 1, C_n]``; returns (x, block outputs)."""
    from hvd_magtag.models import blocks

    channels = blocks.scaled(SAMPLECNN_FRAME_CHANNELS, width)
    x = blocks.conv_bn_relu(x, channels, m, strides=m, padding="valid", name=FRAME_CONV)  # 59049 -> 19683
    outputs = []
    for i, c in enumerate(samplecnn_block_channels(n), start=1):
        x = block(x, blocks.scaled(c, width), f"block{i}")
        outputs.append(x)
        # 3^9: 19683 -> 6561 -> 2187 -> 729 -> 243 -> 81 -> 27 -> 9 -> 3 -> 1
    return x, outputs


def _samplecnn_top(x, n: int, width: float):
    """Lee et al.'s 1x1 conv ``conv{n+1}`` (512 w) + BN + ReLU, then ``embedding`` = global max over time
    (time is 1 for an m^(n+1) input, so this is the reference's Flatten): ``[B, T, C] -> [B, 512 w]``."""
    import keras

    from hvd_magtag.models import blocks

    x = blocks.conv_bn_relu(x, blocks.scaled(SAMPLECNN_TOP_CHANNELS, width), 1, name=f"conv{n + 1}")  # 1 -> 1
    return keras.layers.GlobalMaxPooling1D(name=EMBEDDING_LAYER)(x)


def _lee2017(spec: ModelSpec, n_tags: int, name: str, m: int, n: int, width: float, block: Block):
    """Lee et al. 2017's network around ``block``: ``[B, m^(n+1)] -> [B, n_tags]``."""
    import keras

    from hvd_magtag.models import blocks

    _check_frames(spec, m, n, name)
    inputs, x = blocks.waveform_input(spec)
    x, _ = _samplecnn_trunk(x, m, n, width, block)
    emb = _samplecnn_top(x, n, width)
    return keras.Model(inputs, blocks.tag_head(emb, n_tags, dropout=0.5), name=name)


@register_model(spec=_samplecnn_spec(3, 9), paper="Lee et al. 2017 (SMC)", spec_from_overrides=_mn_spec(3, 9))
def samplecnn(spec: ModelSpec, n_tags: int, *, m: int = 3, n: int = 9, width: float = 1.0, pool: str = "max"):
    """SampleCNN m^n: sample-level raw-waveform CNN (Lee et al. 2017), 3^9 = 59,049-sample input.

    ``[B, m^(n+1)] -> [B, n_tags]``. See the module docstring for the layer plan and parameter count.
    """
    from hvd_magtag.models import blocks

    def block(x, c, name):
        return blocks.conv_block(x, c, m, m, name=name, pool=pool)

    return _lee2017(spec, n_tags, "samplecnn", m, n, width, block)


@register_model(
    spec=_samplecnn_spec(2, 15), paper="Lee et al. 2017 (SMC), m=2", spec_from_overrides=_mn_spec(2, 15)
)
def samplecnn_deep(
    spec: ModelSpec, n_tags: int, *, m: int = 2, n: int = 15, width: float = 1.0, pool: str = "max"
):
    """Deeper SampleCNN with smaller filters/pools: m^n = 2^15, 65,536-sample (4.10 s at 16 kHz) input.

    Lee et al. 2017 compare m in {2, 3, 4, 5}; m = 2 gives the most blocks for a ~4 s window.
    ``[B, 2^16] -> [B, n_tags]``; channels 128, 128, 256 x 12, 512.
    """
    from hvd_magtag.models import blocks

    def block(x, c, name):
        return blocks.conv_block(x, c, m, m, name=name, pool=pool)

    return _lee2017(spec, n_tags, "samplecnn_deep", m, n, width, block)


@register_model(
    spec=_samplecnn_spec(3, 9),
    paper="Lee et al. 2017 + dilated convs (Yu & Koltun 2016)",
    spec_from_overrides=_mn_spec(3, 9),
)
def samplecnn_dilated(
    spec: ModelSpec,
    n_tags: int,
    *,
    m: int = 3,
    n: int = 9,
    dilation: int = 2,
    width: float = 1.0,
    pool: str = "max",
):
    """SampleCNN whose block convs are dilated (``dilation``, default 2): each conv spans
    ``(m - 1) * dilation + 1`` frames for the same parameter count. ``[B, m^(n+1)] -> [B, n_tags]``."""
    from hvd_magtag.models import blocks

    if dilation < 1:
        raise ConfigError(f"samplecnn_dilated override dilation must be >= 1, got {dilation}")

    def block(x, c, name):
        return blocks.dilated_block(x, c, m, m, dilation, name=name, pool=pool)

    return _lee2017(spec, n_tags, "samplecnn_dilated", m, n, width, block)


@register_model(
    spec=_samplecnn_spec(3, 9),
    paper="Lee et al. 2017 + multi-scale kernels (Zhu et al. 2016; Pons et al. 2017)",
    spec_from_overrides=_mn_spec(3, 9),
)
def samplecnn_multikernel(
    spec: ModelSpec,
    n_tags: int,
    *,
    m: int = 3,
    n: int = 9,
    kernels: Sequence[int] = (3, 5, 9),
    merge: str = "concat",
    width: float = 1.0,
    pool: str = "max",
):
    """SampleCNN whose blocks run parallel convs of ``kernels`` sizes (default 3, 5, 9 frames), merged by
    ``merge`` ("concat" splits the block's channels over the kernels, "sum" adds full-width branches).
    ``[B, m^(n+1)] -> [B, n_tags]``."""
    from hvd_magtag.models import blocks

    sizes = tuple(int(k) for k in kernels)

    def block(x, c, name):
        return blocks.multikernel_block(x, c, sizes, m, name=name, merge=merge, pool=pool)

    return _lee2017(spec, n_tags, "samplecnn_multikernel", m, n, width, block)


def _kim2018(spec, n_tags: int, name: str, m: int, n: int, width: float, block: Block, multi: bool, dropout):
    """Kim, Lee & Nam 2018 network around ``block``: frame conv, n blocks, then (``multi``) global max
    pooling of the last 3 block outputs ``block{i}_gmp``, concatenated ``multilevel`` -> Dense(D) + BN + ReLU
    ``embedding`` -> Dropout -> ``tags``. ``[B, m^(n+1)] -> [B, n_tags]``."""
    import keras

    from hvd_magtag.models import blocks

    _check_frames(spec, m, n, name)
    inputs, x = blocks.waveform_input(spec)
    x, outputs = _samplecnn_trunk(x, m, n, width, block)
    first = max(1, n - 2) if multi else n  # blocks whose outputs are aggregated (1-based)
    pooled = [
        keras.layers.GlobalMaxPooling1D(name=f"block{i}_gmp")(outputs[i - 1]) for i in range(first, n + 1)
    ]
    x = keras.layers.Concatenate(name="multilevel")(pooled) if len(pooled) > 1 else pooled[0]
    emb = blocks.dense_embedding(x, x.shape[-1])  # 3^9 multi-level: 256 + 256 + 512 = 1024 features
    return keras.Model(inputs, blocks.tag_head(emb, n_tags, dropout), name=name)


_KIM2018 = "Kim, Lee & Nam 2018 (ICASSP)"


@register_model(spec=_samplecnn_spec(3, 9), paper=_KIM2018, spec_from_overrides=_mn_spec(3, 9))
def samplecnn_se(
    spec: ModelSpec,
    n_tags: int,
    *,
    m: int = 3,
    n: int = 9,
    amplifying_ratio: float = 0.125,
    multi: bool = True,
    dropout: float = 0.5,
    width: float = 1.0,
    pool: str = "max",
):
    """SampleCNN with SE blocks (Kim et al. 2018): conv-BN-ReLU, squeeze-excitation with an FC of
    ``amplifying_ratio`` x C units (0.125, the authors' code default), pool; multi-level global-max
    aggregation of the last 3 blocks. ``[B, m^(n+1)] -> [B, n_tags]``."""
    from hvd_magtag.models import blocks

    def block(x, c, name):
        return blocks.se_block(x, c, m, m, name=name, amplifying_ratio=amplifying_ratio, pool=pool)

    return _kim2018(spec, n_tags, "samplecnn_se", m, n, width, block, multi, dropout)


@register_model(spec=_samplecnn_spec(3, 9), paper=_KIM2018, spec_from_overrides=_mn_spec(3, 9))
def samplecnn_res(
    spec: ModelSpec,
    n_tags: int,
    *,
    m: int = 3,
    n: int = 9,
    n_convs: int = 2,
    multi: bool = True,
    dropout: float = 0.5,
    width: float = 1.0,
    pool: str = "max",
):
    """SampleCNN with Res-n blocks (Kim et al. 2018; n_convs = 2 is their Res-2): two convs with BN,
    dropout 0.2 between, identity / 1x1-conv shortcut, ReLU, pool; multi-level aggregation.
    ``[B, m^(n+1)] -> [B, n_tags]``."""
    from hvd_magtag.models import blocks

    def block(x, c, name):
        return blocks.residual_block(x, c, m, m, name=name, n_convs=n_convs, amplifying_ratio=0, pool=pool)

    return _kim2018(spec, n_tags, "samplecnn_res", m, n, width, block, multi, dropout)


@register_model(spec=_samplecnn_spec(3, 9), paper=_KIM2018, spec_from_overrides=_mn_spec(3, 9))
def samplecnn_rese(
    spec: ModelSpec,
    n_tags: int,
    *,
    m: int = 3,
    n: int = 9,
    n_convs: int = 2,
    amplifying_ratio: float = 0.125,
    multi: bool = True,
    dropout: float = 0.5,
    width: float = 1.0,
    pool: str = "max",
):
    """SampleCNN with ReSE-n blocks (Kim et al. 2018's best, ReSE-2-Multi): residual blocks whose residual
    branch is squeeze-excited before the sum. ``[B, m^(n+1)] -> [B, n_tags]``."""
    from hvd_magtag.models import blocks

    def block(x, c, name):
        return blocks.residual_block(
            x, c, m, m, name=name, n_convs=n_convs, amplifying_ratio=amplifying_ratio, pool=pool
        )

    return _kim2018(spec, n_tags, "samplecnn_rese", m, n, width, block, multi, dropout)


@register_model(spec=_samplecnn_spec(3, 9), paper="Lee et al. 2017 front end + GRU (Choi et al. 2017)")
def samplecnn_crnn(
    spec: ModelSpec,
    n_tags: int,
    *,
    m: int = 3,
    conv_blocks: int = 5,
    gru_units: int = 128,
    gru_layers: int = 2,
    dropout: float = 0.3,
    width: float = 1.0,
    pool: str = "max",
):
    """Raw CRNN: SampleCNN frame conv + ``conv_blocks`` basic blocks, then ``gru_layers`` GRUs of
    ``gru_units`` (x width) summarising the frame sequence, as in Choi et al. 2017's CRNN.

    ``[B, window] -> [B, n_tags]``; default 59,049 samples -> 19683 frames -> 5 blocks -> 81 steps of
    256 w channels -> GRU -> GRU ``embedding`` [B, 128 w] -> Dropout -> ``tags``.
    """
    import keras

    from hvd_magtag.models import blocks

    if conv_blocks < 1 or gru_layers < 1:
        raise ConfigError(
            f"samplecnn_crnn: conv_blocks and gru_layers must be >= 1, got {conv_blocks}, {gru_layers}"
        )
    _check_frames(spec, m, conv_blocks, "samplecnn_crnn")
    inputs, x = blocks.waveform_input(spec)
    x = blocks.conv_bn_relu(
        x, blocks.scaled(SAMPLECNN_FRAME_CHANNELS, width), m, strides=m, padding="valid", name=FRAME_CONV
    )  # 59049 -> 19683
    for i, channels in enumerate(samplecnn_block_channels(conv_blocks + 1)[:conv_blocks], start=1):
        x = blocks.conv_block(x, blocks.scaled(channels, width), m, m, name=f"block{i}", pool=pool)
        # 19683 -> 6561 -> 2187 -> 729 -> 243 -> 81
    units = blocks.scaled(gru_units, width)
    for j in range(1, gru_layers):
        x = keras.layers.GRU(units, return_sequences=True, name=f"gru{j}")(x)  # [B, 81, units]
    emb = keras.layers.GRU(units, name=EMBEDDING_LAYER)(x)  # [B, units]
    return keras.Model(inputs, blocks.tag_head(emb, n_tags, dropout), name="samplecnn_crnn")


@register_model(
    spec=_samplecnn_spec(3, 9, windowing="superpool", n_windows=SUPERPOOL_N_WINDOWS),
    paper="Lee et al. 2017 encoder, pooled over windows (max/mean; attention: Ilse et al. 2018)",
    spec_from_overrides=_mn_spec(3, 9),
)
def samplecnn_superpool(
    spec: ModelSpec,
    n_tags: int,
    *,
    m: int = 3,
    n: int = 9,
    window_pool: str = "attention",
    attention_units: int = 128,
    dropout: float = 0.5,
    width: float = 1.0,
    pool: str = "max",
):
    """Window superpooling: one SampleCNN encoder (sub-model ``window_encoder``, weights shared) embeds every
    window of a clip, the embeddings are pooled across windows by ``window_pool`` ("max", "mean" or
    learned "attention") and one classifier tags the clip.

    ``[B, n_windows, m^(n+1)] -> fold [B * n_windows, m^(n+1)] -> window_encoder [B * n_windows, 512 w]
    -> unfold [B, n_windows, 512 w] -> window_pool [B, 512 w] -> Dropout -> tags [B, n_tags]``.
    ``window_encoder``'s output layer is its ``embedding`` (per window); ``pool`` is the in-block pooling.
    """
    import keras

    from hvd_magtag.models import blocks, layers

    def block(x, c, name):
        return blocks.conv_block(x, c, m, m, name=name, pool=pool)

    _check_frames(spec, m, n, "samplecnn_superpool")
    w_in, x = blocks.waveform_input(spec.replace(windowing="split"), name="window")
    x, _ = _samplecnn_trunk(x, m, n, width, block)
    encoder = keras.Model(w_in, _samplecnn_top(x, n, width), name=WINDOW_ENCODER)

    inputs = keras.Input(shape=spec.input_shape(), name="waveform_windows")  # [B, W, window]
    x = layers.FoldWindows(name=FOLD_WINDOWS)(inputs)  # [B * W, window]
    x = encoder(x)  # [B * W, D]
    x = layers.UnfoldWindows(spec.n_windows, name=UNFOLD_WINDOWS)(x)  # [B, W, D]
    x = blocks.window_pool(x, window_pool, name=WINDOW_POOL, attention_units=attention_units)  # [B, D]
    return keras.Model(inputs, blocks.tag_head(x, n_tags, dropout), name="samplecnn_superpool")

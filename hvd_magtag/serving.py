"""The graph functions of a tagging model (what :mod:`hvd_magtag.export` saves as a SavedModel and
:class:`hvd_magtag.tag.Tagger` runs in memory): everything from encoded audio to tag probabilities in the
graph: decode, downmix, resample to ``spec.sample_rate``, cut consecutive windows of ``spec.window``
samples over the whole clip (the last one zero-padded), features (``features_for(spec)``) and the model,
run on batches of :data:`BATCH_WINDOWS` windows so activations stay bounded.

Serving signatures (``loaded.signatures[name]``; the same functions are attributes of ``tf.saved_model.load``)::

    from_bytes(contents: string [], format: string [])        # file bytes; format mp3 | wav | flac | ogg
    from_waveform(waveform: float32 [samples, channels], sample_rate: int32 [])   # Hz
        -> {"clip": [n_tags], "taggram": [n_rows, n_tags], "embedding": [n_windows, D]}
    predict_windows(windows: float32 [n_windows, context + spec.window])  # mono, at spec.sample_rate;
        # context = features.window_context(spec) samples before each window (0 except musicnn's models)
        -> {"taggram": [n_rows, n_tags], "embedding": [n_windows, D], "clip": [n_tags]}
    prepare(waveform: float32 [samples, channels], sample_rate: int32 [])
        -> {"waveform": float32 [samples']}                      # mono at spec.sample_rate
    prepare_bytes(contents: string [], format: string [])
        -> {"waveform": float32 [samples'], "sample_rate": int32 [] (the file's, Hz), "samples": int32 []}
    metadata() -> {"tags": string [n_tags], "spec": string []}  # spec = ModelSpec JSON

and variables ``tags`` (string [n_tags]) and ``spec_json`` (string []) on the loaded object.

Probabilities are sigmoid outputs in [0, 1]; n_rows = n_windows. ``split`` models: one taggram row per
window, ``clip`` = the mean of the rows. ``superpool`` models: taggram row i is the model on window i alone
(its embedding through the layers after ``unfold_windows``: the pooling sees ``n_windows`` copies of one
embedding, which max, mean and attention pooling return unchanged); ``clip`` is the mean, over consecutive
groups of ``spec.n_windows`` windows, of the model on each group (the last group topped up with the clip's
first windows); ``embedding`` rows are the ``window_encoder`` outputs.

Whole-clip functions (``from_bytes``, ``from_waveform``) hold the decoded clip in memory; for hour-long
files use :class:`hvd_magtag.tag.Tagger`, which streams segments through ``prepare`` and
``predict_windows``. Zero-length audio raises ``InvalidArgumentError``.

Model conventions relied on (hvd_magtag.models): the output layer is named ``tags``; a layer named
``embedding`` gives the per-window features of split models; superpool models hold a sub-model named
``window_encoder`` mapping one window (model input) to its embedding ``[D]``.

Formats ``from_bytes`` / ``prepare_bytes`` take (decoded in the graph, no Python in the SavedModel): mp3
(MPEG-1/2/2.5 Layer III, CBR/VBR), wav with 16-bit PCM samples (format tag 1: not 8/24/32-bit, float or
WAVE_FORMAT_EXTENSIBLE), flac with 16-bit samples, ogg Vorbis. Every other file (those WAV and FLAC
variants, Opus, AIFF, M4A AAC/ALAC): decode it in Python (``hvd_magtag.audio.decode_file``) and call
``from_waveform``, as ``hvd_magtag.tag`` does.

The mp3 sample rate is not part of the decoded tensor: :func:`header_sample_rate` reads it (and the rate of
wav, flac and ogg) from the file header in the graph.
"""

from __future__ import annotations

import json

import keras
import tensorflow as tf

from hvd_magtag import audio
from hvd_magtag.audio.formats import GRAPH_NAMES, MPEG_RATES
from hvd_magtag.errors import ExportError
from hvd_magtag.features import features_for, window_context
from hvd_magtag.models.inference import inference_model
from hvd_magtag.models.names import EMBEDDING_LAYER, OUTPUT_LAYER, UNFOLD_WINDOWS, WINDOW_ENCODER

#: Windows the model sees per call inside the exported functions (bounds activation memory for long clips).
BATCH_WINDOWS = 16
#: Bytes of a file searched for the header that gives its sample rate (after any ID3v2 tag for mp3).
HEADER_BYTES = 1 << 16


# ---------------------------------------------------------------------------------------------------------
# In-graph helpers
# ---------------------------------------------------------------------------------------------------------


def _find(data, pattern: bytes):
    """First index of ``pattern`` in int32 bytes ``data [n]`` as (found bool [], index int32 [])."""

    span = tf.maximum(tf.size(data) - len(pattern) + 1, 0)
    hit = tf.ones([span], tf.bool)
    for k, byte in enumerate(pattern):
        hit = tf.logical_and(hit, tf.equal(data[k : k + span], byte))
    return tf.reduce_any(hit), tf.cast(tf.argmax(tf.cast(hit, tf.int32)), tf.int32)


def _bytes(contents, offset, length: int):
    """``length`` bytes of scalar string ``contents`` from ``offset`` as int32 ``[<= length]``."""

    return tf.cast(tf.io.decode_raw(tf.strings.substr(contents, offset, length), tf.uint8), tf.int32)


def _le32(data, pos):

    return data[pos] + data[pos + 1] * 256 + data[pos + 2] * 65536 + tf.bitwise.left_shift(data[pos + 3], 24)


def _rate_wav(contents):

    data = _bytes(contents, 0, HEADER_BYTES)
    found, pos = _find(data, b"fmt ")
    tf.debugging.Assert(found, ["wav: no fmt chunk in the first bytes of the file"])
    return _le32(data, pos + 12)  # fmt chunk: id(4) size(4) format(2) channels(2) rate(4)


def _rate_flac(contents):

    data = _bytes(contents, 0, HEADER_BYTES)
    found, pos = _find(data, b"fLaC")
    tf.debugging.Assert(found, ["flac: no fLaC marker in the first bytes of the file"])
    # fLaC(4), block header(4), STREAMINFO: block sizes(2+2), frame sizes(3+3), then a 20-bit sample rate
    return data[pos + 18] * 4096 + data[pos + 19] * 16 + tf.bitwise.right_shift(data[pos + 20], 4)


def _rate_ogg(contents):

    data = _bytes(contents, 0, HEADER_BYTES)
    found, pos = _find(data, b"\x01vorbis")
    tf.debugging.Assert(found, ["ogg: no Vorbis identification header in the first bytes of the file"])
    return _le32(data, pos + 12)  # type(1) 'vorbis'(6) version(4) channels(1) rate(4)


def _rate_mp3(contents):

    head = _bytes(contents, 0, 10)
    head = tf.pad(head, [[0, 10 - tf.size(head)]])
    has_id3 = tf.logical_and(
        tf.equal(head[0], ord("I")), tf.logical_and(tf.equal(head[1], ord("D")), tf.equal(head[2], ord("3")))
    )
    id3_size = head[6] * 2097152 + head[7] * 16384 + head[8] * 128 + head[9] + 10  # syncsafe size + header
    id3_size += tf.where(tf.equal(tf.bitwise.bitwise_and(head[5], 0x10), 0), 0, 10)  # footer present
    data = _bytes(contents, tf.where(has_id3, id3_size, 0), HEADER_BYTES)
    n = tf.maximum(tf.size(data) - 2, 0)
    b0, b1, b2 = data[:n], data[1 : n + 1], data[2 : n + 2]
    version = tf.bitwise.bitwise_and(tf.bitwise.right_shift(b1, 3), 3)
    layer = tf.bitwise.bitwise_and(tf.bitwise.right_shift(b1, 1), 3)
    bitrate = tf.bitwise.right_shift(b2, 4)
    rate_index = tf.bitwise.bitwise_and(tf.bitwise.right_shift(b2, 2), 3)
    sync = tf.reduce_all(
        tf.stack(
            [
                tf.equal(b0, 0xFF),
                tf.equal(tf.bitwise.bitwise_and(b1, 0xE0), 0xE0),
                tf.not_equal(version, 1),
                tf.not_equal(layer, 0),
                tf.not_equal(bitrate, 15),
                tf.not_equal(rate_index, 3),
            ]
        ),
        axis=0,
    )
    tf.debugging.Assert(
        tf.reduce_any(sync), ["mp3: no MPEG audio frame header in the first bytes of the file"]
    )
    first = tf.cast(tf.argmax(tf.cast(sync, tf.int32)), tf.int32)

    return tf.gather_nd(tf.constant(MPEG_RATES, tf.int32), [version[first], rate_index[first]])


_RATE_READERS = {"mp3": _rate_mp3, "wav": _rate_wav, "flac": _rate_flac, "ogg": _rate_ogg}


def header_sample_rate(contents, fmt):
    """Sample rate (Hz, int32 scalar) of an encoded file, read from its header in the graph.

    contents: scalar tf.string (the file's bytes); fmt: scalar tf.string mp3 | wav | flac | ogg (or an
    extension of those formats: ``hvd_magtag.audio.GRAPH_NAMES``). mp3: the first MPEG frame header after an ID3v2 tag; wav:
    the ``fmt`` chunk; flac: STREAMINFO; ogg: the Vorbis identification header. A missing header raises
    ``InvalidArgumentError`` at run time.
    """

    names = list(_RATE_READERS)
    fmt = tf.strings.lower(fmt)
    hit = tf.where(tf.equal(tf.constant(list(GRAPH_NAMES)), fmt))
    tf.debugging.assert_positive(
        tf.size(hit),
        message="from_bytes takes mp3, wav (16-bit PCM), flac (16-bit) and ogg (Vorbis); decode other files "
        "in Python (hvd_magtag.audio.decode_file) and call from_waveform",
    )
    branch = tf.gather(
        tf.constant([names.index(v) for v in GRAPH_NAMES.values()], tf.int32), tf.reshape(hit, [-1])[0]
    )
    return tf.switch_case(branch, [lambda r=_RATE_READERS[n]: r(contents) for n in names])


# ---------------------------------------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------------------------------------


def window_heads(model, spec):
    """Keras sub-models of ``model`` sharing its weights, for one batch of windows as model input.

    Returns ``(window_model, group_model)``:
      window_model: ``[B, *spec.window_shape()] -> (probs [B, n_tags], embedding [B, D])``, with
                    :func:`~hvd_magtag.models.inference.inference_model`'s exact rewrites (split models);
      group_model:  ``None`` for split models; for superpool models the model itself,
                    ``[G, n_windows, *window_shape] -> probs [G, n_tags]``.
    """

    try:
        tags_out = model.get_layer(OUTPUT_LAYER).output
    except ValueError:
        raise ExportError(
            f"model {model.name!r} has no layer named {OUTPUT_LAYER!r} (the zoo's output layer)"
        ) from None
    if spec.windowing == "split":
        try:
            emb = model.get_layer(EMBEDDING_LAYER).output
        except ValueError:
            raise ExportError(
                f"model {model.name!r} has no layer named {EMBEDDING_LAYER!r} (penultimate features)"
            ) from None
        heads = keras.Model(model.inputs, [tags_out, emb], name=f"{model.name}_heads")
        return inference_model(heads), None  # the same numbers, faster (models/inference.py)

    try:
        encoder = model.get_layer(WINDOW_ENCODER)
    except ValueError:
        raise ExportError(
            f"superpool model {model.name!r} has no sub-model named {WINDOW_ENCODER!r}"
        ) from None
    window = keras.Input(spec.window_shape(), name="window")
    emb = encoder(window)  # [B, D]
    # One embedding repeated n_windows times: max, mean and attention pooling across identical embeddings
    # give it back, so this is the model's classifier applied to one window's embedding.
    repeated = keras.layers.Lambda(
        lambda e: keras.ops.repeat(keras.ops.expand_dims(e, 1), spec.n_windows, axis=1),
        name="repeat_embedding",
    )(emb)  # [B, n_windows, D]
    try:
        tail = keras.Model(model.get_layer(UNFOLD_WINDOWS).output, model.output, name="pool_and_classify")
    except ValueError:
        raise ExportError(f"superpool model {model.name!r} has no layer named {UNFOLD_WINDOWS!r}") from None
    probs = tail(repeated)  # [B, n_tags]
    return keras.Model(window, [probs, emb], name=f"{model.name}_window_heads"), model


# ---------------------------------------------------------------------------------------------------------
# The tagging module
# ---------------------------------------------------------------------------------------------------------


class TaggingModule(tf.Module):
    """Audio -> tags for one model; see :mod:`hvd_magtag.export` for the functions and shapes."""

    def __init__(self, model, spec, tags: list[str], batch_windows: int = BATCH_WINDOWS):
        super().__init__(name="hvd_magtag_tagger")
        n_tags = int(model.get_layer(OUTPUT_LAYER).output.shape[-1])
        if n_tags != len(tags):
            raise ExportError(f"model has {n_tags} outputs but {len(tags)} tag names were given")
        self.model = model
        self.window_model, self.group_model = window_heads(model, spec)
        self._spec = spec
        self._context = window_context(spec)  # samples before each window its features read
        self._to_input = features_for(spec, with_context=True)
        self._batch = int(batch_windows)
        self._n_tags = n_tags
        #: trailing shapes of the window model's outputs: probabilities [n_tags], embedding [D]
        self._window_shapes = ((n_tags,), tuple(int(d) for d in self.window_model.outputs[1].shape[1:]))
        self.tags = tf.Variable(list(tags), trainable=False, dtype=tf.string, name="tags")
        self.spec_json = tf.Variable(json.dumps(spec.to_dict(), sort_keys=True), trainable=False, name="spec")

        waveform_sig = [
            tf.TensorSpec([None, None], tf.float32, "waveform"),
            tf.TensorSpec([], tf.int32, "sample_rate"),
        ]
        self.prepare = tf.function(self._prepare, input_signature=waveform_sig)
        self.from_waveform = tf.function(self._from_waveform, input_signature=waveform_sig)
        self.predict_windows = tf.function(
            self._predict_windows,
            input_signature=[tf.TensorSpec([None, self._context + spec.window], tf.float32, "windows")],
        )
        self.from_bytes = tf.function(
            self._from_bytes,
            input_signature=[
                tf.TensorSpec([], tf.string, "contents"),
                tf.TensorSpec([], tf.string, "format"),
            ],
        )
        self.prepare_bytes = tf.function(
            self._prepare_bytes,
            input_signature=[
                tf.TensorSpec([], tf.string, "contents"),
                tf.TensorSpec([], tf.string, "format"),
            ],
        )
        self.metadata = tf.function(self._metadata, input_signature=[])

    def signatures(self) -> dict:
        return {
            "serving_default": self.from_bytes,
            "from_bytes": self.from_bytes,
            "from_waveform": self.from_waveform,
            "predict_windows": self.predict_windows,
            "prepare": self.prepare,
            "prepare_bytes": self.prepare_bytes,
            "metadata": self.metadata,
        }

    # -- functions --------------------------------------------------------------------------------
    def _metadata(self):
        return {"tags": tf.identity(self.tags), "spec": tf.identity(self.spec_json)}

    def _prepare(self, waveform, sample_rate):
        tf.debugging.assert_positive(tf.shape(waveform)[0], message="the audio has no samples")
        tf.debugging.assert_positive(sample_rate, message="sample_rate must be > 0 Hz")
        mono = audio.to_mono(waveform)  # [samples, channels] -> [samples]
        return {"waveform": audio.resample(mono, sample_rate, self._spec.sample_rate)}  # -> [samples']

    def _prepare_bytes(self, contents, format):  # noqa: A002 - the signature's public argument name
        rate = header_sample_rate(contents, format)  # checked first: a clear error for a non-audio file
        with tf.control_dependencies([rate]):
            decoded = audio.decode(contents, format)  # [samples, channels] at the file's rate
        return {
            "waveform": self._prepare(decoded, rate)["waveform"],
            "sample_rate": rate,
            "samples": tf.shape(decoded)[0],
        }

    def _batched(self, fn, items, out_shapes: tuple[tuple[int, ...], ...]):
        """Apply ``fn`` to ``items [n, ...]`` in batches of self._batch (sequentially, bounded memory): the
        whole batches through ``tf.map_fn``, the remaining ``n % batch`` rows in one call of their own size
        (no zero rows computed: a 30 s clip of 11 musicnn windows costs 11 rows, not 16). ``out_shapes``:
        the trailing shape of each of ``fn``'s float32 outputs."""
        n = tf.shape(items)[0]
        full = n // self._batch * self._batch

        def whole_batches():
            grouped = tf.reshape(
                items[:full], tf.concat([[full // self._batch, self._batch], tf.shape(items)[1:]], 0)
            )
            signature = tuple(tf.TensorSpec([self._batch, *s], tf.float32) for s in out_shapes)
            outs = tf.map_fn(fn, grouped, fn_output_signature=signature, parallel_iterations=1)
            return tuple(tf.reshape(o, [-1, *s]) for o, s in zip(outs, out_shapes))

        def none():
            return tuple(tf.zeros([0, *s], tf.float32) for s in out_shapes)

        head = tf.cond(full > 0, whole_batches, none)
        tail = tf.cond(n > full, lambda: tuple(fn(items[full:])), none)
        return [tf.concat([a, b], axis=0) for a, b in zip(head, tail)]

    def _window_outputs(self, batch):
        probs, emb = self.window_model(self._to_input(batch), training=False)
        return tf.cast(probs, tf.float32), tf.cast(emb, tf.float32)

    def _group_outputs(self, groups):
        return (tf.cast(self.group_model(self._to_input(groups), training=False), tf.float32),)

    def _predict_windows(self, windows):
        taggram, embedding = self._batched(
            self._window_outputs, windows, self._window_shapes
        )  # [n, n_tags], [n, D]
        if self.group_model is None:
            clip = tf.reduce_mean(taggram, axis=0)
        else:
            g = self._spec.n_windows
            n = tf.shape(windows)[0]
            n_groups = (n + g - 1) // g
            order = tf.math.floormod(tf.range(n_groups * g), n)  # top up the last group from the start
            groups = tf.reshape(tf.gather(windows, order), [n_groups, g, self._context + self._spec.window])
            (group_probs,) = self._batched(
                self._group_outputs, groups, ((self._n_tags,),)
            )  # [n_groups, n_tags]
            clip = tf.reduce_mean(group_probs, axis=0)
        return {"clip": clip, "taggram": taggram, "embedding": embedding}

    def _from_waveform(self, waveform, sample_rate):
        x = self._prepare(waveform, sample_rate)["waveform"]
        return self._predict_windows(audio.tail_padded_windows(x, self._spec.window, self._context))

    def _from_bytes(self, contents, format):  # noqa: A002 - the signature's public argument name
        x = self._prepare_bytes(contents, format)["waveform"]
        return self._predict_windows(audio.tail_padded_windows(x, self._spec.window, self._context))


def tagging_module(model, spec, tags: list[str], batch_windows: int = BATCH_WINDOWS):
    """The in-memory :class:`TaggingModule` for a Keras ``model`` (what :func:`export_run` saves)."""
    return TaggingModule(model, spec, tags, batch_windows)

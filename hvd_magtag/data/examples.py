"""Model inputs from a clip's waveform: the example-building shared by the audio pipeline and TFRecords.

:mod:`hvd_magtag.data.pipeline` (decoding audio files) and :mod:`hvd_magtag.data.tfrecord` (extracting and
reading records) both cut windows and compute features here, so a raw extraction feeds models exactly the
inputs the audio path does.

    x = train_example(waveform, spec, seed)     # spec.input_shape(): one random window (split) or the
                                                # n_windows evenly spaced ones (superpool)
    x = eval_windows(waveform, spec, 10)        # [10, *window_shape] (split) or [1, n_windows, ...]
"""

from __future__ import annotations

import tensorflow as tf

from hvd_magtag import audio
from hvd_magtag.features import features_for, hop_alignment
from hvd_magtag.models.registry import ModelSpec

#: Largest epoch index of the endless training streams (a counter; never reached in practice).
MAX_EPOCHS = 2**40


def train_example(waveform: tf.Tensor, spec: ModelSpec, seed: tf.Tensor) -> tf.Tensor:
    """Training input from a clip's waveform ``[samples]``: a random window (split) or the ``n_windows``
    evenly spaced windows (superpool), through the spec's features -> ``spec.input_shape()``."""
    to_input, align = features_for(spec), hop_alignment(spec)
    if spec.windowing == "superpool":
        windows = audio.even_windows(waveform, spec.window, spec.n_windows, align)
    else:
        windows = audio.random_window(waveform, spec.window, seed, align)
    return tf.ensure_shape(to_input(windows), spec.input_shape())


def eval_windows(waveform: tf.Tensor, spec: ModelSpec, windows: int | str) -> tf.Tensor:
    """Evaluation inputs from a clip's waveform: split models ``[k, *window_shape]`` (k = ``windows`` evenly
    spaced, or all consecutive when "all"); superpool models ``[1, n_windows, *window_shape]``."""
    to_input, align = features_for(spec), hop_alignment(spec)
    if spec.windowing == "superpool":
        x = audio.even_windows(waveform, spec.window, spec.n_windows, align)[None]
    elif windows == "all":
        x = audio.all_windows(waveform, spec.window, align)
    else:
        x = audio.even_windows(waveform, spec.window, int(windows), align)
    return tf.ensure_shape(to_input(x), [None, *spec.input_shape()])

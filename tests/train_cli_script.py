"""``python train_cli_script.py train|evaluate ARGS``: hvd_magtag.train / hvd_magtag.evaluate's main, plus a
BN-free, dropout-free tiny model ``test_plain_conv`` registered for the equivalence test.

With neither BatchNorm (per-rank batch statistics) nor dropout (per-rank masks), one rank on batches of 2B
and two ranks on batches of B compute the same global-batch gradient, so their weights must agree.
(tests/multirank/runner.py runs scripts, not ``-m`` modules, hence this file.)
"""

import sys

from hvd_magtag.models.registry import ModelSpec, register_model


@register_model(spec=ModelSpec(input="raw", window=729))
def test_plain_conv(spec, n_tags):
    """Two strided convs, global average, Dense sigmoid: ``[B, 729] -> [B, n_tags]``."""
    import keras

    inputs = keras.Input(spec.window_shape(), name="waveform")
    x = keras.layers.Reshape((spec.window, 1))(inputs)
    x = keras.layers.Conv1D(8, 9, strides=3, activation="relu", name="conv1")(x)  # 729 -> 241
    x = keras.layers.Conv1D(8, 3, strides=3, activation="relu", name="conv2")(x)  # 241 -> 80
    x = keras.layers.GlobalAveragePooling1D(name="embedding")(x)  # 80 -> 1
    return keras.Model(inputs, keras.layers.Dense(n_tags, activation="sigmoid", name="tags")(x))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "train":
        from hvd_magtag.train import main
    else:
        from hvd_magtag.evaluate import main
    sys.exit(main(args))

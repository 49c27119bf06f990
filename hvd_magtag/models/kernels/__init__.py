"""TensorFlow kernels behind the fast layers (:mod:`hvd_magtag.models.layers`): the TensorFlow-only
arithmetic (custom gradients, fused ops) lives here, so the layers stay Keras layers that fall back to
``keras.ops`` / Keras's own computation on any other backend or configuration."""

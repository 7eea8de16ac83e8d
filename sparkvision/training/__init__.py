"""Training: deterministic splits into tensor shards (``tensorize``), their streaming into tf.data
(``tfdata``), the Keras models (``model``) and the training run with checkpoints (``train``)."""

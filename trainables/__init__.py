"""Fine-tuning code that runs inside trials: one shared epoch loop (`loop`), and per task family
the data, the model and the metric (`images`, `backbones`, `image_classifier`)."""

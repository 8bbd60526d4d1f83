"""Live Keras tests run Keras 3 on the torch backend (CPU) unless KERAS_BACKEND says otherwise.

Set before any test module imports keras; Keras reads the variable once, on first import."""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

"""Numbers only: output shapes, the validated convolution geometry (ConvSpec), indices."""

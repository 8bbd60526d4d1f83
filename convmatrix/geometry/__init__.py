"""Numbers only: output shapes, the validated convolution geometry (ConvSpec) and index arithmetic."""

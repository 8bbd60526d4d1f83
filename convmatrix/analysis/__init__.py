"""Analyses of affine maps: paths, checkerboard, transpose vs inverse, spectra, blocks, saving.

Nothing here imports :mod:`convmatrix.layers`: analyses work on the hooks every layer kind
provides.
"""

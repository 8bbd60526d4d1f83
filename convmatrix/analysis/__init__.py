"""Analyses of affine maps: path counts, checkerboard, transpose vs inverse, spectra, blocks, saving, dask, operators.

Nothing here imports :mod:`convmatrix.layers`: analyses work on the hooks every layer kind provides.
"""

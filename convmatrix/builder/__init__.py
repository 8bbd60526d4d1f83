"""Building matrices: the CSR layout and builder, matrix-free application, budget, weights."""

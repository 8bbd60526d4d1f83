"""Building matrices: the CSR box layout and builder, matrix-free application, the memory budget and weights."""

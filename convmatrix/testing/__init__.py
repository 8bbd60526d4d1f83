"""Check anyone's convolution: probe a black box into its matrix, diff it, and name the bug.

``probe_matrix`` / ``probe`` recover the exact matrix (and offset) a black-box function
computes, by graph-coloured probing on a layer's pattern; ``assert_conv_equal`` compares a
function with a layer and, on a mismatch, names the geometry it really implements;
``identify`` lists the layers a function implements; ``relation`` says whether one layer is
another, its transpose, or either up to a named change (a flipped kernel, swapped channels, a
padding shift, a crop). Hypothesis strategies for property
tests live in :mod:`convmatrix.testing.strategies` (needs the ``hypothesis`` extra).
"""

from convmatrix.testing.assertions import ConvMismatch, assert_conv_equal
from convmatrix.testing.diagnose import identify
from convmatrix.testing.probe import ProbeResult, probe, probe_matrix
from convmatrix.testing.relation import Relation, relation

__all__ = ["ConvMismatch", "ProbeResult", "Relation", "assert_conv_equal", "identify", "probe",
           "probe_matrix", "relation"]

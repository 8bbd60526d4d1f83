"""torch networks through ``torch.fx``: a traced graph as one :class:`~convmatrix.Graph`.

:func:`read_fx` traces a module with ``torch.fx`` (or takes a ``GraphModule`` the user traced,
or a ``torch.export`` ``ExportedProgram``), runs it once on a sample (``torch.fx.Interpreter``:
every node's value, hence its shape), and translates every node that depends on the input into
a node of a :class:`~convmatrix.Graph`: leaf modules through the module reader the caller passes
(:func:`convmatrix.adapters.torch.read_module`), functions, methods and ``aten`` operators
through :data:`FX_TRANSLATORS` (one translator per operation name). Nodes that do not depend on
the input (parameters, buffers, ``x.size(0)``) are constants the translators read.

Linearisation plugs in here: with a point ``x`` and a ``jacobian`` translator, a node no affine
translator reads (a ReLU, a max-pool, a normalisation) is handed to ``jacobian`` with its values
at ``x`` (an :class:`FxCall`); it answers with the layer of the node's Jacobian at ``x`` whose
offset is ``f(x) − J x`` (see :data:`JacobianTranslator`). :func:`walk_fx` also returns the
network's value at the point; with ``dtype`` the network runs with its floating parameters and
buffers seen in that dtype (``torch.func.functional_call``: the module itself is untouched). This
is the one torch.fx walker: :func:`convmatrix.from_torch` and :func:`convmatrix.linearize` both
read graphs through it.

torch is imported only inside functions (an adapter never makes ``import convmatrix`` import
a framework).

The package, one job a module:

- :mod:`~convmatrix.adapters.torch_fx.call`: what a translator sees and answers
  (:class:`FxCall`, :class:`Traced`, the hooks :data:`ModuleReader` and
  :data:`JacobianTranslator`);
- :mod:`~convmatrix.adapters.torch_fx.broadcast`: torch's broadcasting of one sample onto
  another's shape, as a layer (sums of branches of different shapes);
- :mod:`~convmatrix.adapters.torch_fx.ops` and its families ``ops_arithmetic`` (``+ - * /``),
  ``ops_shape`` (views, permutations, flips), ``ops_split`` (concatenations, splits, tilings),
  ``ops_select`` (indexing), ``ops_layers`` (functional convolutions, pools, norms) and
  ``ops_linear`` (``F.linear``, ``x @ W``, sums and means): the translator tables;
- :mod:`~convmatrix.adapters.torch_fx.translate`: which translator reads a node, and the
  refusal when none does;
- :mod:`~convmatrix.adapters.torch_fx.trace`: the ``GraphModule`` (traced once, cached) and the
  dtype it runs in;
- :mod:`~convmatrix.adapters.torch_fx.run`: the graph run on one sample, in-place writes;
- :mod:`~convmatrix.adapters.torch_fx.walk`: :func:`read_fx` and :func:`walk_fx`.
"""

from convmatrix.adapters.torch_fx.call import (
    FxCall,
    JacobianTranslator,
    ModuleReader,
    Traced,
    branch_node,
    replace_args,
)
from convmatrix.adapters.torch_fx.ops import FX_MODULE_TRANSLATORS, FX_TRANSLATORS
from convmatrix.adapters.torch_fx.walk import FxWalk, read_fx, walk_fx

__all__ = ["FX_MODULE_TRANSLATORS", "FX_TRANSLATORS", "FxCall", "FxWalk", "JacobianTranslator",
           "ModuleReader", "Traced", "branch_node", "read_fx", "replace_args", "walk_fx"]

"""Running a traced graph on one sample, and the in-place writes the graph would not see.

:func:`run_graph` gives every node's value (as produced and as it was when the node ran);
:func:`node_kind` and :func:`inplace_flag` name a node's operation and whether it writes in
place; :func:`check_inplace` refuses a write into the input or into a value read later.
"""

from __future__ import annotations

import inspect
from typing import Any

from convmatrix._errors import ConvMatrixError
from convmatrix.adapters.torch_fx.call import FxCall

__all__ = ["check_inplace", "holds_tensor", "inplace_flag", "node_kind", "run_graph"]


def node_kind(node: Any, module: Any) -> tuple[str, bool]:
    """The operation's name and whether it is in place."""
    target = node.target
    if node.op == "call_module":
        return type(module).__name__, False
    if node.op == "call_method":
        name = str(target)
    elif hasattr(target, "_schema"):
        name = target._schema.name.split("::")[-1]
    else:
        name = getattr(target, "__name__", str(target))
    if name.startswith("__") and name.endswith("__"):
        name = name[2:-2]
    inplace = name.endswith("_") and not name.startswith("_") and name != "_"
    if name in ("iadd", "isub", "imul", "itruediv", "setitem"):
        inplace = True
    return (name[:-1] if inplace and name.endswith("_") else name), inplace


def inplace_flag(node: Any, module: Any) -> bool:
    """A module or function told to write in place (``inplace=True``, also positionally).

    ``nn.ReLU(inplace=True)``, ``F.relu(y, inplace=True)``, ``F.relu(y, True)``.
    """
    if node.op == "call_module":
        return getattr(module, "inplace", False) is True
    if node.op != "call_function":
        return False
    if node.kwargs.get("inplace") is True:
        return True
    try:
        names = list(inspect.signature(node.target).parameters)
    except (TypeError, ValueError):
        return False
    if "inplace" not in names:
        return False
    index = names.index("inplace")
    return len(node.args) > index and node.args[index] is True


def run_graph(gm: Any, sample: Any) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """Every node's value on ``sample`` (a batch of one): as produced, and as a snapshot.

    The first dict holds the tensors the graph produced (their memory tells which values alias
    each other); the second holds each node's value as it was when the node ran: before a node
    that may write in place (``nn.ELU(inplace=True)``, ``out += identity``, ``add_``,
    ``setitem``, ``out=``) every earlier value sharing memory with its arguments is copied, so
    the write cannot change what an earlier node's value was — the Jacobian of an activation is
    taken at its input, not at its output. Other values are not copied.
    """
    import torch

    values: dict[Any, Any] = {}
    snapshots: dict[Any, Any] = {}

    def snapshot(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return value.detach().clone()
        if type(value) in (list, tuple):
            return type(value)(snapshot(v) for v in value)
        if isinstance(value, tuple):  # torch.return_types (values, indices) and the like
            try:
                return type(value)([snapshot(v) for v in value])
            except TypeError:
                return value
        return value

    from torch.fx.node import map_arg

    modules = dict(gm.named_modules())

    def load(node: Any) -> Any:
        return values[node]

    copied: set[Any] = set()
    with torch.no_grad():  # torch.fx.Interpreter's rules, without its per-node bookkeeping
        for node in gm.graph.nodes:
            args = map_arg(node.args, load)
            kwargs = map_arg(node.kwargs, load)
            if _may_write(node, modules, args, kwargs):
                memory = _storages([*args, *kwargs.values()], torch)
                for earlier, value in values.items():
                    if earlier not in copied and memory & _storages(value, torch):
                        snapshots[earlier] = snapshot(value)
                        copied.add(earlier)
            if node.op == "placeholder":
                result = sample
            elif node.op == "get_attr":
                result = gm
                for part in str(node.target).split("."):
                    result = getattr(result, part)
            elif node.op == "call_function":
                result = node.target(*args, **kwargs)
            elif node.op == "call_method":
                result = getattr(args[0], node.target)(*args[1:], **kwargs)
            elif node.op == "call_module":
                result = modules[node.target](*args, **kwargs)
            else:  # output
                break
            values[node] = snapshots[node] = result
    return values, snapshots


_WRITING = frozenset({"iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow", "iand",
                      "ior", "ixor", "ilshift", "irshift", "imatmul", "setitem", "__setitem__"})


def _may_write(node: Any, modules: dict[str, Any], args: Any, kwargs: Any) -> bool:
    """Whether a node may write into one of its arguments (conservatively: when in doubt, yes)."""
    if node.op == "call_module":
        return bool(getattr(modules.get(node.target), "inplace", False))
    if node.op not in ("call_function", "call_method"):
        return False
    if kwargs.get("inplace") or kwargs.get("out") is not None or any(
            a is True for a in args[1:]):
        return True
    target = node.target
    if hasattr(target, "_schema"):  # an aten overload (torch.export): its schema says so
        return any(argument.alias_info is not None and argument.alias_info.is_write
                   for argument in target._schema.arguments)
    name = target if isinstance(target, str) else getattr(target, "__name__", "")
    return name in _WRITING or (name.endswith("_") and not name.endswith("__"))


def holds_tensor(value: Any, torch: Any) -> bool:
    """Whether a node's value is a tensor or a list or tuple holding one."""
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, list | tuple) and any(holds_tensor(v, torch) for v in value)


def _mutated_later(node: Any, target: Any, order: dict[Any, int]) -> bool:
    return any(order[user] > order[node] for user in target.users if user is not node)


def _storages(value: Any, torch: Any) -> set[int]:
    if isinstance(value, torch.Tensor):
        return {value.untyped_storage().data_ptr()}
    if isinstance(value, list | tuple):
        return set().union(*(_storages(v, torch) for v in value)) if value else set()
    return set()


def _alias_used_later(node: Any, target: Any, values: dict[Any, Any], traced: dict[Any, Any],
                      order: dict[Any, int], torch: Any) -> Any:
    """A traced value sharing ``target``'s memory, read after the in-place ``node``.

    A view (a slice, a chunk, ``view``, an ``nn.Identity`` output) or its source, or the input
    itself: the in-place write changes it, which the graph would not see.
    """
    memory = _storages(values.get(target), torch)
    if not memory:
        return None
    for other in traced:
        if other is target or other is node or not (_storages(values.get(other), torch)
                                                    & memory):
            continue
        if other.op == "placeholder" or _mutated_later(node, other, order):
            return other
    return None


def check_inplace(call: FxCall, node: Any, placeholder: Any, values: dict[Any, Any],
                  traced: dict[Any, Any], order: dict[Any, int], torch: Any) -> None:
    """Refuse an in-place write the graph would not see (into the input, or read later)."""
    target = node.args[0] if node.args else None
    if target is placeholder and isinstance(target, torch.fx.Node):
        raise ConvMatrixError(
            f"{call.where()} writes in place into the network's input "
            f"{target.name!r}; in-place operations on the input are not read")
    if isinstance(target, torch.fx.Node) and _mutated_later(node, target, order):
        raise ConvMatrixError(
            f"{call.where()} writes in place into {target.name!r}, which is used "
            f"again later; the graph would see the changed value")
    alias = (_alias_used_later(node, target, values, traced, order, torch)
             if isinstance(target, torch.fx.Node) else None)
    if alias is not None:
        raise ConvMatrixError(
            f"{call.where()} writes in place into {node.args[0].name!r}, which shares "
            f"memory with {alias.name!r} (a view of it or its source), used "
            f"{'as the network input' if alias.op == 'placeholder' else 'again later'};"
            f" in-place writes through views are not read")

"""Helpers for the hidden tests of the graded notebooks: trusted comparisons, tamper and cheat checks.

A graded notebook runs student code and hidden tests in one kernel, so student code could replace
``torch.equal``, ``torch.testing.assert_close`` or builtins to make wrong answers pass, rebind the
names the tests use (``checks``, ``torch``), return objects that lie, or call the library
(``torchvision.ops.nms``) instead of implementing it. This module answers each:

* :func:`capture` runs in the notebook's first cell (a locked 0-point cell that nbgrader restores),
  *before* any student code. It makes a **private copy** of this module (its source executed again
  into a dictionary that no module name points to, with a private copy of the builtins), and that
  copy records the originals: every attribute of ``torch``, ``torch.nn.functional``,
  ``torch.testing``, ``torch.Tensor``, ``nn.Module``, ``builtins``, ``math`` and ``numpy`` (objects
  and the code of Python functions), the library references of :data:`FORBIDDEN` and the classes the
  tests compare against, the torch mode stacks, the trace hooks and IPython's input pipeline.
* hidden tests never use a notebook name for their tools: each hidden cell starts with
  :data:`PROLOGUE`, which finds the private copy's :class:`Trusted` class through
  ``object.__subclasses__()`` (syntax only: no name, builtin, import or ``sys.modules`` entry that
  student code could rebind) and rebinds ``checks``, ``torch``, ``F``, ``nn`` to the trusted ones. A
  second class of that name (an impostor) makes the unpacking fail, so the cell fails.
* every check first calls :func:`assert_untampered`, which fails with ``TamperingError`` naming what
  changed (an attribute replaced, a ``__code__`` rewritten, a torch function or dispatch mode left on
  the stack, a trace hook, an IPython input or AST transformer), and then compares with the captured
  originals. Results must be exactly ``torch.Tensor`` (``type(x) is torch.Tensor``, not a subclass that
  could lie to ``.shape`` or ``==``), and nothing the student controls is converted before comparing.
* IPython's ``transform_cell`` is wrapped at capture: before each later cell is transformed, the input
  and AST transformer lists are put back as captured (so an added transformer cannot rewrite a hidden
  test) and the change is remembered as tampering.
* :func:`call` runs a student function with :func:`forbid_library` active: every entry of
  :data:`FORBIDDEN` and every function of a ``cvcourse.ops`` module (private helpers included) is
  replaced, in every loaded module that exposes it, by a stub that raises ``ForbiddenCallError``;
  references the student's code holds itself are found by walking the names its code uses, default
  arguments, closures, attributes of its own objects, lists, tuples, dicts, sets and
  ``functools.partial`` objects, and copies of a library function's code (``exec`` of its source) are
  recognised by their bytecode. ``call`` also fails when the function modified its tensor arguments.
* below the Python names, :func:`forbid_library` also watches PyTorch's dispatcher (a
  ``TorchDispatchMode``): the kernels in :data:`FORBIDDEN_OPS` and transposed convolutions are refused
  however they are reached (``torch.ops.aten.max_unpool2d``, ``torch.nn.grad.conv2d_input``,
  ``aten::convolution_backward``). torch's private helpers that leave a dispatch mode are stubbed
  while student code runs, and when the function returns the mode must still be on top of the stack
  with the dispatch-key state unchanged; otherwise the call fails.

Not caught (documented for instructors, and listed by :mod:`cvcourse.grading.static_report`): code
that reaches the private copy through introspection (``object.__subclasses__``, ``gc``,
``__globals__``, frames) and edits it, patches IPython's kernel or error display below
``transform_cell``, or reaches the forbidden operations through a route not listed (e.g. a C++
extension compiled on the fly, ``ctypes``); a human reading flagged notebooks remains the last line.

Hidden tests must reach the references through :func:`reference`, not by importing them into the
notebook's namespace (the alias walk would flag them as the student's).
"""

from __future__ import annotations

import builtins
import functools
import importlib
import math
import sys
import types
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
import torch.testing
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode  # public class in a private module, stable since 1.13

__all__ = [
    "capture", "captured", "assert_untampered", "reference", "forbid_library", "call", "assert_close",
    "assert_equal", "assert_shape", "assert_tensor", "GradingFailure", "TamperingError", "ForbiddenCallError",
    "WATCHED", "FORBIDDEN", "FORBIDDEN_OPS", "PROLOGUE", "Trusted", "grading", "budget",
]

#: The first lines of every hidden test cell: find the trusted tools without any name the notebook holds.
PROLOGUE = (
    '[checks] = [c for c in ().__class__.__base__.__subclasses__() '
    'if c.__module__ == "cvcourse.grading.trusted" and c.__qualname__ == "Trusted"]\n'
    "torch, F, nn = checks.torch, checks.F, checks.nn"
)
_PRIVATE_NAME = "cvcourse.grading.trusted"


class GradingFailure(AssertionError):
    """A hidden test found a wrong answer; the message says what, not how to fix it in code."""


class TamperingError(GradingFailure):
    """A function that the tests rely on was replaced after the notebook started."""


class ForbiddenCallError(GradingFailure):
    """The student's function used the library operation it is meant to implement."""


class Trusted:
    """The hidden tests' handle on the private copy of this module (filled in by :func:`capture`)."""


#: (module, attribute path) of the objects the checks rely on by name (their ``__code__`` is watched too).
WATCHED: tuple[tuple[str, str], ...] = (
    ("torch", "equal"), ("torch", "allclose"), ("torch", "isclose"), ("torch", "eq"), ("torch", "all"),
    ("torch", "abs"), ("torch", "isfinite"), ("torch", "as_tensor"), ("torch", "tensor"),
    ("torch.testing", "assert_close"), ("torch", "Tensor.__eq__"), ("torch", "Tensor.all"),
    ("torch", "Tensor.clone"), ("torch", "Tensor.detach"), ("torch", "Tensor.tolist"),
    ("torch", "Tensor.__bool__"), ("torch", "Tensor.item"),
    ("numpy", "allclose"), ("numpy", "array_equal"), ("numpy.testing", "assert_allclose"),
    ("math", "isclose"),
    ("builtins", "abs"), ("builtins", "all"), ("builtins", "any"), ("builtins", "len"),
    ("builtins", "isinstance"), ("builtins", "max"), ("builtins", "min"), ("builtins", "sum"),
    ("builtins", "float"), ("builtins", "int"), ("builtins", "bool"), ("builtins", "round"),
    ("builtins", "sorted"), ("builtins", "range"), ("builtins", "zip"), ("builtins", "type"),
    ("builtins", "getattr"), ("builtins", "AssertionError"), ("builtins", "Exception"),
)

#: Namespaces whose every attribute is recorded at capture and compared at each check. For classes,
#: a new attribute counts too (it could shadow an inherited method, e.g. ``Tensor.shape``).
TRACKED: tuple[str, ...] = ("torch", "torch.nn.functional", "torch.testing", "torch.Tensor", "torch.nn.Module",
                            "builtins", "math", "numpy", "numpy.testing", "torch.nn")
#: Names IPython itself puts into and takes out of ``builtins`` around every cell.
_IPYTHON_BUILTINS = frozenset({"get_ipython", "display", "exit", "quit", "__IPYTHON__", "_", "__", "___",
                               "input", "raw_input",  # ipykernel forwards input() to the front end per request
                               "__loader__", "__spec__", "__builtins__", "copyright", "credits", "license", "help"})

#: Library operations that graded functions must not call: (module, attribute path).
FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("torchvision.ops", "nms"), ("torchvision.ops", "batched_nms"), ("torchvision.ops", "box_iou"),
    ("torchvision.ops", "box_area"), ("torchvision.ops", "generalized_box_iou"),
    ("torchvision.ops", "distance_box_iou"), ("torchvision.ops", "complete_box_iou"),
    ("torchvision.ops", "remove_small_boxes"), ("torchvision.ops", "clip_boxes_to_image"),
    ("torchvision.ops.boxes", "_batched_nms_coordinate_trick"), ("torchvision.ops.boxes", "_batched_nms_vanilla"),
    ("torchvision.ops.boxes", "_box_inter_union"), ("torchvision.ops.boxes", "_upcast"),
    ("torch.ops.torchvision", "nms"),
    ("torch.nn.functional", "max_unpool1d"), ("torch.nn.functional", "max_unpool2d"),
    ("torch.nn.functional", "max_unpool3d"), ("torch.nn.functional", "conv_transpose1d"),
    ("torch.nn.functional", "conv_transpose2d"), ("torch.nn.functional", "conv_transpose3d"),
    ("torch.nn.functional", "interpolate"), ("torch.nn.functional", "upsample"),
    ("torch.nn.functional", "upsample_nearest"), ("torch.nn.functional", "upsample_bilinear"),
    ("torch.nn.grad", "conv1d_input"), ("torch.nn.grad", "conv2d_input"), ("torch.nn.grad", "conv3d_input"),
    ("torch", "conv_transpose1d"), ("torch", "conv_transpose2d"), ("torch", "conv_transpose3d"),
    ("torch", "max_unpool2d"), ("torch._C._nn", "max_unpool2d"), ("torch._C._nn", "upsample_nearest2d"),
    ("torch._C._nn", "_upsample_nearest_exact2d"), ("torch._C._nn", "upsample_bilinear2d"),
    ("torch", "convolution"), ("torch", "_convolution"),
    ("torch.nn", "MaxUnpool2d.forward"), ("torch.nn", "ConvTranspose2d.forward"),
    ("torch.nn", "ConvTranspose1d.forward"), ("torch.nn", "Upsample.forward"),
    ("torch.nn", "UpsamplingNearest2d.forward"), ("torch.nn", "UpsamplingBilinear2d.forward"),
    # torch's private ways out of a dispatch mode (the guard below): refused while student code runs
    ("torch._C", "_pop_torch_dispatch_stack"), ("torch._C", "_set_dispatch_mode"),
    ("torch._C", "_unset_dispatch_mode"), ("torch._C", "_DisableTorchDispatch"),
    ("torch._C", "_ExcludeDispatchKeyGuard"), ("torch._C", "ExcludeDispatchKeyGuard"),
    ("torch._C", "_SetExcludeDispatchKeyGuard"), ("torch._C", "_dispatch_tls_set_dispatch_key_excluded"),
    ("torch._C", "_dispatch_tls_set_dispatch_key_included"), ("torch._C", "_DisablePythonDispatcher"),
    ("torch.utils._python_dispatch", "_pop_mode"), ("torch.utils._python_dispatch", "_pop_mode_temporarily"),
    ("torch.utils._python_dispatch", "_disable_current_modes"),
    ("torch.utils._python_dispatch", "_disable_infra_mode"),
)
#: Every function of these packages (all their modules, private helpers included) is forbidden too.
FORBIDDEN_MODULES = ("cvcourse.ops",)

#: Dispatcher kernels that graded functions must not reach by any route (schema names). A transposed
#: ``aten::convolution`` / ``aten::_convolution`` is refused as well; a plain one (``F.conv2d``) stays allowed.
FORBIDDEN_OPS = frozenset({
    "torchvision::nms", "torchvision::roi_align", "torchvision::roi_pool", "torchvision::ps_roi_align",
    "torchvision::ps_roi_pool", "aten::max_unpool2d", "aten::max_unpool3d", "aten::upsample_nearest1d",
    "aten::upsample_nearest2d", "aten::upsample_nearest3d", "aten::_upsample_nearest_exact1d",
    "aten::_upsample_nearest_exact2d", "aten::_upsample_nearest_exact3d", "aten::upsample_bilinear2d",
    "aten::_upsample_bilinear2d_aa", "aten::upsample_bicubic2d", "aten::upsample_linear1d",
    "aten::upsample_trilinear3d", "aten::convolution_backward", "aten::convolution_backward_overrideable",
    "aten::_convolution_double_backward", "aten::slow_conv_transpose2d", "aten::slow_conv_transpose3d",
    "aten::cudnn_convolution_transpose", "aten::miopen_convolution_transpose",
    "aten::mkldnn_convolution_transpose", "aten::max_pool2d_with_indices_backward",
    "aten::max_pool3d_with_indices_backward", "aten::upsample_nearest2d_backward",
    "aten::_upsample_nearest_exact2d_backward",
})
_TRANSPOSABLE = frozenset({"aten::convolution", "aten::_convolution", "aten::convolution_overrideable"})
#: Classes the hidden tests compare against (``reference("cvcourse.models.segmentation.UNet")``).
CLASSES = ("cvcourse.models.segmentation.UNet", "cvcourse.models.segmentation.FCN", "torch.nn.Module",
           "torch.Tensor")
#: IPython's input pipeline: the lists that rewrite a cell before it runs.
_PIPELINE_LISTS = (("input_transformers_cleanup",), ("input_transformers_post",), ("ast_transformers",),
                   ("input_transformer_manager", "cleanup_transforms"),
                   ("input_transformer_manager", "line_transforms"),
                   ("input_transformer_manager", "token_transformers"))
#: Shell attributes that rewrite or run a cell (an instance attribute added later overrides the class's).
_PIPELINE_ATTRS = ("transform_cell", "transform_ast", "run_cell", "run_cell_async", "_run_cell", "run_ast_nodes",
                   "run_code", "should_run_async", "compile", "input_transformer_manager")

_SNAPSHOT: dict[str, tuple[str, str, Any, Any]] | None = None  # name -> (module, path, object, code)
_TRACKED: dict[str, tuple[Any, dict[str, Any], dict[str, Any]]] = {}  # name -> (namespace, values, codes)
_REFS: dict[str, Any] = {}
_FINGERPRINTS: dict[Any, str] = {}
_LIBRARY_GLOBALS: set[int] = set()
_STATE: dict[str, Any] = {}
_NOTES: list[str] = []  # tampering seen by the input-pipeline guard
_LATE = False
_PRIVATE: Any = None  # the private copy (in the public module), or None (in the copy itself)


def _ipython() -> Any:
    try:
        from IPython import get_ipython  # noqa: PLC0415
    except ImportError:  # pragma: no cover
        return None
    return get_ipython()


def _resolve(module: str, path: str) -> Any:
    if module == "torch.ops.torchvision":
        obj: Any = torch.ops.torchvision
    else:
        obj = _STATE.get("modules", sys.modules).get(module) or __import__(module, fromlist=["_"])
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _key(module: str, path: str) -> str:
    return f"{module}.{path}"


def _code_of(obj: Any) -> Any:
    try:
        return obj.__code__ if isinstance(obj, types.FunctionType) else None
    except AttributeError:  # pragma: no cover
        return None


def _fingerprint(code: types.CodeType) -> Any:
    """Bytecode, names and variable names of a code object and its nested ones (line numbers left out)."""
    nested = tuple(_fingerprint(c) for c in code.co_consts if isinstance(c, types.CodeType))
    return (code.co_code, code.co_names, code.co_varnames, nested)


def _library_submodules(package: str) -> list[Any]:
    import importlib  # noqa: PLC0415
    import pkgutil  # noqa: PLC0415

    try:
        pkg = importlib.import_module(package)
    except ImportError:
        return []
    mods = [pkg]
    for info in pkgutil.walk_packages(getattr(pkg, "__path__", []), prefix=package + "."):
        try:
            mods.append(importlib.import_module(info.name))
        except ImportError:  # pragma: no cover
            continue
    return mods


def _forbidden_targets() -> dict[str, tuple[str, str, Any]]:
    found: dict[str, tuple[str, str, Any]] = {}
    try:
        import torch.nn.grad  # noqa: F401, PLC0415
        import torch.utils._python_dispatch  # noqa: F401, PLC0415
        import torchvision.ops  # noqa: F401, PLC0415  (loads the torchvision.* entries and C++ ops)
    except ImportError:  # pragma: no cover  (torchvision is a course dependency)
        pass
    for module, path in FORBIDDEN:
        try:
            found[_key(module, path)] = (module, path, _resolve(module, path))
        except (ImportError, AttributeError, RuntimeError):
            continue
    for package in FORBIDDEN_MODULES:
        mods = _library_submodules(package)
        seen = set()
        for mod in mods[:1]:  # the package's public names first: messages say cvcourse.ops.box_area
            for attr in getattr(mod, "__all__", [a for a in dir(mod) if not a.startswith("_")]):
                obj = getattr(mod, attr, None)
                if callable(obj) and not isinstance(obj, type):
                    found[f"{package}.{attr}"] = (package, attr, obj)
                    seen.add(id(obj))
        for mod in mods:  # then every function of every module, private helpers included
            for attr, obj in vars(mod).items():
                if isinstance(obj, types.FunctionType) and obj.__module__.startswith(package) and id(obj) not in seen:
                    seen.add(id(obj))
                    found[f"{obj.__module__}.{obj.__name__}"] = (mod.__name__, attr, obj)
    return found


def _pipeline_state(shell: Any) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for path in _PIPELINE_LISTS:
        obj = shell
        for part in path:
            obj = getattr(obj, part, None)
        if isinstance(obj, list):
            state[".".join(path)] = (obj, list(obj))
    state["attrs"] = {name: vars(shell).get(name, _MISSING) for name in _PIPELINE_ATTRS}
    return state


_MISSING = object()


def _restore_pipeline(shell: Any) -> list[str]:
    """Put IPython's input pipeline back as captured; return what had changed."""
    want = _STATE.get("pipeline")
    if want is None or shell is None:
        return []
    changed = []
    for name, value in want["attrs"].items():
        now = vars(shell).get(name, _MISSING)
        if now is not value and name != "transform_cell":
            changed.append(f"IPython shell.{name}")
            if value is _MISSING:
                vars(shell).pop(name, None)
            else:
                vars(shell)[name] = value
    for name, (lst, items) in ((k, v) for k, v in want.items() if k != "attrs"):
        obj = shell
        for part in name.split("."):
            obj = getattr(obj, part, None)
        if obj is not lst or len(lst) != len(items) or any(a is not b for a, b in zip(lst, items)):
            changed.append(f"IPython {name}")
            lst[:] = items
            parent = shell
            for part in name.split(".")[:-1]:
                parent = getattr(parent, part)
            setattr(parent, name.split(".")[-1], lst)
    return changed


def _guard_pipeline(shell: Any) -> None:
    """Wrap ``shell.transform_cell`` so that each later cell is transformed with the captured pipeline."""
    original = type(shell).transform_cell

    def transform_cell(raw_cell: str) -> str:
        changed = _restore_pipeline(shell)
        if changed:
            _NOTES.extend(c for c in changed if c not in _NOTES)
        return original(shell, raw_cell)

    vars(shell)["transform_cell"] = transform_cell
    _STATE["pipeline"] = _pipeline_state(shell)
    _STATE["transform_cell"] = transform_cell


def _hooks() -> tuple:
    monitoring = getattr(sys, "monitoring", None)
    tools = tuple(monitoring.get_tool(i) for i in range(6)) if monitoring else ()
    return (sys.gettrace(), sys.getprofile(), tools)


def _dispatch_state() -> tuple:
    return (str(torch._C._dispatch_tls_local_exclude_set()), str(torch._C._dispatch_tls_local_include_set()))


def capture(preload: tuple[str, ...] | list[str] = ()) -> None:
    """Remember the trusted originals; call in the notebook's first cell, before any student code.

    Args:
        preload: modules the hidden tests import later (e.g. ``"cvcourse.grading.budgets"``): imported now,
            so that their ``sys.modules`` entries (and those of what they import) are pinned too.

    Calling it again later does nothing (a student cannot refresh the snapshot after tampering).
    """
    global _PRIVATE
    for name in preload:
        importlib.import_module(name)
    if __name__ != _PRIVATE_NAME:
        if _PRIVATE is None:
            _PRIVATE = _private_copy()
            _PRIVATE.capture()
            for name in __all__:  # the public names now lead to the private copy
                if name not in ("GradingFailure", "TamperingError", "ForbiddenCallError", "Trusted"):
                    globals()[name] = getattr(_PRIVATE, name)
            _PRIVATE._watch_public(sys.modules[__name__])
        return
    _capture_here()


def _private_copy() -> Any:
    """This module's source executed again into a fresh namespace that no module name points to."""
    import importlib.util  # noqa: PLC0415

    me = sys.modules[__name__]
    spec = importlib.util.spec_from_file_location(_PRIVATE_NAME, me.__file__)
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__builtins__"] = dict(vars(builtins))  # private: later edits of builtins do not reach it
    code = compile(spec.loader.get_source(_PRIVATE_NAME), me.__file__, "exec")
    # the exception classes are shared, so `except checks.GradingFailure` means the same everywhere
    shared = {n: getattr(me, n) for n in ("GradingFailure", "TamperingError", "ForbiddenCallError")}
    exec(code, module.__dict__)  # noqa: S102
    module.__dict__.update(shared)
    return module


#: Modules whose ``sys.modules`` entry hidden tests rely on when they import (a fake entry is tampering).
_PINNED = frozenset({"torch", "torch.nn", "torch.nn.functional", "torch.testing", "numpy", "math", "builtins"})


def _pinned_module(name: str) -> bool:
    return name in _PINNED or name == "cvcourse" or name.startswith("cvcourse.")


def _capture_here() -> None:
    global _SNAPSHOT, _LATE
    if _SNAPSHOT is not None:
        return
    shell = _ipython()
    if shell is not None and len(shell.user_ns.get("In", ())) > 2:  # In[0] is "", In[1] this cell
        _LATE = True  # another cell ran first: the originals may already be replaced
    snap = {}
    for module, path in WATCHED:
        obj = _resolve(module, path)
        snap[_key(module, path)] = (module, path, obj, _code_of(obj))
    refs = _forbidden_targets()
    for name, (module, path, obj) in refs.items():
        snap[name] = (module, path, obj, _code_of(obj))
    for name in CLASSES:
        module, _, path = name.rpartition(".")
        try:
            refs[name] = (module, path, _resolve(module, path))
        except (ImportError, AttributeError):  # pragma: no cover
            continue
    for name in TRACKED:
        try:
            ns = __import__(name, fromlist=["_"])
        except ImportError:
            module, _, attr = name.rpartition(".")
            ns = _resolve(module, attr)
        values = {k: v for k, v in vars(ns).items() if not (name == "builtins" and k in _IPYTHON_BUILTINS)}
        codes = {k: c for k, v in values.items() if (c := _code_of(v)) is not None}
        _TRACKED[name] = (ns, values, codes)
    student_ns = {id(shell.user_ns), id(shell.user_global_ns)} if shell is not None else set()
    for mod_name, mod in list(sys.modules.items()):
        try:
            if mod_name != "__main__" and id(vars(mod)) not in student_ns:
                _LIBRARY_GLOBALS.add(id(vars(mod)))
        except TypeError:
            continue
    for name, (_, _, obj) in refs.items():
        if isinstance(obj, types.FunctionType) and len(obj.__code__.co_code) >= 40:
            _FINGERPRINTS[_fingerprint(obj.__code__)] = name
    _REFS.update({name: obj for name, (_, _, obj) in refs.items()})
    _STATE.update(modes=(torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack()),
                  hooks=_hooks(), dispatch=_dispatch_state(), modules=sys.modules,
                  entries={k: m for k, m in sys.modules.items() if _pinned_module(k)})
    if shell is not None:
        _guard_pipeline(shell)
    _SNAPSHOT = snap
    _fill_trusted()
    _keep_alive()


def _fill_trusted() -> None:
    """Give :class:`Trusted` (found by :data:`PROLOGUE`) this copy's tools, as it is now."""
    g = globals()
    for name in __all__ + ["_orig"]:
        value = g[name]
        setattr(Trusted, name, staticmethod(value) if isinstance(value, types.FunctionType) else value)
    Trusted.torch, Trusted.F, Trusted.nn, Trusted.np = torch, F, nn, np
    Trusted.builtins = builtins


def _keep_alive() -> None:
    """A daemon thread holds this copy, so that no later code can drop it and put an impostor in its place."""
    import threading  # noqa: PLC0415
    import time  # noqa: PLC0415

    def hold(module: Any = sys.modules.get(__name__), trusted: Any = Trusted, ns: Any = globals()) -> None:
        while True:
            time.sleep(3600)

    threading.Thread(target=hold, name="cvcourse-grading-trusted", daemon=True).start()


def _watch_public(module: Any) -> None:
    """Also watch the public ``cvcourse.grading.checks`` names (a student could rebind those)."""
    if _SNAPSHOT is None:  # pragma: no cover
        return
    for name in __all__:
        obj = getattr(module, name)
        _SNAPSHOT[f"{module.__name__}.{name}"] = (module.__name__, name, obj, _code_of(obj))


def captured() -> bool:
    """Whether :func:`capture` has run in this kernel."""
    return _SNAPSHOT is not None


def _orig(module: str, path: str) -> Any:
    if _SNAPSHOT is None:
        raise TamperingError(
            "the notebook's first cell (which records the trusted functions) did not run before the tests; "
            "run the notebook from the top and do not remove its first cell"
        )
    return _SNAPSHOT[_key(module, path)][2]


def _changes() -> list[str]:
    """Everything that differs from the capture, as names."""
    changed = []
    for name, (module, path, obj, code) in _SNAPSHOT.items():  # type: ignore[union-attr]
        try:
            now = _resolve(module, path)
        except (ImportError, AttributeError, RuntimeError, KeyError):
            changed.append(name)
            continue
        if now is not obj or (code is not None and _code_of(now) is not code):
            changed.append(name)
    for name, (ns, values, codes) in _TRACKED.items():
        now = vars(ns)
        for k, v in values.items():
            if now.get(k, _MISSING) is not v or (k in codes and _code_of(v) is not codes[k]):
                changed.append(f"{name}.{k}")
        if isinstance(ns, type):
            changed += [f"{name}.{k} (added)" for k in now if k not in values]
    if (torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack()) != _STATE["modes"]:
        changed.append("a torch function or dispatch mode left active")
    modules = _STATE["modules"]  # the interpreter's own dict, whatever ``sys.modules`` is rebound to
    if sys.modules is not modules:
        changed.append("sys.modules (rebound)")
    changed += [f"sys.modules[{k!r}]" for k, m in _STATE["entries"].items() if modules.get(k) is not m]
    if _hooks() != _STATE["hooks"]:
        changed.append("a trace or profile hook (sys.settrace, sys.setprofile, sys.monitoring)")
    if _dispatch_state() != _STATE["dispatch"]:
        changed.append("torch's dispatch-key state")
    shell = _ipython()
    if shell is not None and "pipeline" in _STATE:
        if vars(shell).get("transform_cell") is not _STATE["transform_cell"]:
            changed.append("IPython shell.transform_cell")
        changed += [c for c in _restore_pipeline(shell) if c not in changed]
    changed += [c for c in _NOTES if c not in changed]
    return list(dict.fromkeys(changed))


def assert_untampered() -> None:
    """Fail with ``TamperingError`` when any captured function was replaced or rewritten.

    Raises:
        TamperingError: names the replaced function(s), or says that the setup cell did not run first.
    """
    _orig("torch", "equal")  # raises when capture() never ran
    if _LATE:
        raise TamperingError(
            "the notebook's grading setup cell was not the first cell to run, so the tests cannot trust "
            "the functions they compare with; keep that cell at the top and do not add cells above it"
        )
    changed = _changes()
    if changed:
        shown = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "")
        raise TamperingError(
            "tampering detected: " + shown + " changed after the notebook started (replaced, modified or left on). "
            "The tests cannot trust their comparisons, so this test fails. Do not reassign library, builtin or "
            "grading functions, or change how the notebook runs, in your code."
        )


def reference(name: str) -> Any:
    """The trusted original of a forbidden library function or a compared class, e.g.
    ``reference("torchvision.ops.nms")``, ``reference("cvcourse.models.segmentation.UNet")``."""
    assert_untampered()
    try:
        return _REFS[name]
    except KeyError:
        raise KeyError(f"no captured reference named {name!r}") from None


class _Stub:
    """Stands in for a forbidden function while student code runs."""

    def __init__(self, name: str, log: list[str]) -> None:
        self._name, self._log = name, log

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._log.append(self._name)
        raise ForbiddenCallError(
            f"your code called {self._name}, the library version of what this exercise asks you to build "
            "(or a way around the check for it); implement it with basic tensor operations instead"
        )

    def __get__(self, obj: Any, objtype: Any = None) -> Any:  # used as a method (nn.Module.forward)
        return self

    def __getattr__(self, item: str) -> Any:  # torch.ops.torchvision.nms.default
        if item.startswith("__"):
            raise AttributeError(item)
        return self


def _is_student_function(fn: types.FunctionType) -> bool:
    """Student code: any function whose globals are not those of a module loaded before the notebook."""
    return id(fn.__globals__) not in _LIBRARY_GLOBALS


def _library_class(cls: type) -> bool:
    """A class of a module loaded before the notebook, under its own name there."""
    mod = _STATE.get("modules", sys.modules).get(getattr(cls, "__module__", None) or "")
    try:
        return mod is not None and id(vars(mod)) in _LIBRARY_GLOBALS and getattr(mod, cls.__name__, None) is cls
    except TypeError:  # pragma: no cover
        return False


def _walk_references(fn: Any, forbidden_ids: dict[int, str]) -> list[str]:
    """Names under which the student's code holds a forbidden object itself, or a copy of its code."""
    found: list[str] = []
    seen: set[int] = set()
    todo: list[tuple[str, Any]] = [(getattr(fn, "__name__", "your function"), fn)]
    isinstance_ = _orig("builtins", "isinstance")
    type_ = _orig("builtins", "type")
    while todo:
        label, obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if id(obj) in forbidden_ids:
            found.append(f"{forbidden_ids[id(obj)]} (as `{label}`)")
            continue
        kind = type_(obj)
        if kind in (list, tuple, set, frozenset):
            todo += [(label, v) for v in obj]
        elif kind is dict:
            todo += [(label, v) for v in obj.values()]
        elif kind is functools.partial:
            todo += [(label, obj.func)] + [(label, v) for v in obj.args] + [(label, v) for v in obj.keywords.values()]
        elif isinstance_(obj, (staticmethod, classmethod)):
            todo.append((label, obj.__func__))
        elif isinstance_(obj, property):
            todo += [(label, f) for f in (obj.fget, obj.fset) if f is not None]
        elif isinstance_(obj, types.MethodType):
            todo += [(label, obj.__func__), (label, obj.__self__)]
        elif isinstance_(obj, type):
            if _library_class(obj):
                continue
            todo += [(f"{obj.__name__}.{k}", v) for k, v in vars(obj).items() if not k.startswith("__")
                     or k in ("__call__", "__init__", "__new__", "__getattr__", "__getattribute__")]
            todo += [(obj.__name__, b) for b in obj.__bases__]
        elif isinstance_(obj, types.FunctionType):
            if obj.__code__.co_code and _fingerprint(obj.__code__) in _FINGERPRINTS:
                found.append(f"{_FINGERPRINTS[_fingerprint(obj.__code__)]} (a copy of its code, as `{label}`)")
                continue
            if not _is_student_function(obj):
                continue  # library code is not the student's
            codes, names = [obj.__code__], set()
            while codes:
                code = codes.pop()
                names.update(code.co_names)
                codes += [c for c in code.co_consts if isinstance_(c, types.CodeType)]
            todo += [(n, obj.__globals__[n]) for n in names if n in obj.__globals__]
            todo += [(f"closure of {obj.__name__}", c.cell_contents) for c in obj.__closure__ or ()
                     if _cell_filled(c)]
            todo += [(f"default argument of {obj.__name__}", d) for d in obj.__defaults__ or ()]
            todo += [(f"default argument of {obj.__name__}", d) for d in (obj.__kwdefaults__ or {}).values()]
        elif isinstance_(obj, types.ModuleType):
            continue  # attributes looked up at call time meet the stubs
        elif hasattr(obj, "__dict__") and not isinstance_(obj, Tensor) and not _library_class(type_(obj)):
            todo.append((label, type_(obj)))
            try:
                todo += [(f"{label}.{k}", v) for k, v in vars(obj).items()]
            except TypeError:  # pragma: no cover
                pass
    return found


class _ForbidOps(TorchDispatchMode):
    """Refuses the kernels of :data:`FORBIDDEN_OPS` (and transposed convolutions) while active, logging each."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        name = func._schema.name  # "namespace::op", the same for every overload
        if name in FORBIDDEN_OPS or (name in _TRANSPOSABLE and len(args) > 6 and args[6]):
            label = f"{name}{' (transposed)' if name in _TRANSPOSABLE else ''}"
            self.log.append(label)
            raise ForbiddenCallError(f"your code reached {label}, the library kernel of what this exercise asks "
                                     "you to build; implement it with basic tensor operations instead")
        return func(*args, **(kwargs or {}))


def _cell_filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


@contextmanager
def forbid_library(fn: Any = None) -> Iterator[list[str]]:
    """Make every :data:`FORBIDDEN` operation raise ``ForbiddenCallError`` inside the block.

    Args:
        fn: the student's function or class; its own references to forbidden objects are checked
            first (aliases such as ``from torchvision.ops import nms as my_nms``, lists, partials, copies).

    Yields:
        The list of forbidden names called in the block (also when student code swallowed the error).

    Raises:
        ForbiddenCallError: a forbidden call, a held reference, or the dispatch guard was removed.
    """
    assert_untampered()
    originals = dict(_REFS)
    ids = {id(obj): name for name, obj in originals.items() if name not in CLASSES}
    if fn is not None:
        held = _walk_references(fn, ids)
        if held:
            raise ForbiddenCallError(
                "your code refers to " + ", ".join(dict.fromkeys(held)) + ", the library version of what this "
                "exercise asks you to build; implement it with basic tensor operations instead"
            )
    log: list[str] = []
    patched: list[tuple[Any, str, Any]] = []
    prefixes = ("torch", "torchvision", "cvcourse")
    mode = _ForbidOps(log)
    entered = False
    try:
        for mod_name, mod in list(_STATE["modules"].items()):
            if mod is None or not mod_name.startswith(prefixes) or mod_name.startswith(("torch._dynamo", __name__)):
                continue
            try:
                items = list(vars(mod).items())
            except TypeError:
                continue
            for attr, value in items:
                name = ids.get(id(value))
                if name is not None:
                    patched.append((mod, attr, value))
                    setattr(mod, attr, _Stub(name, log))
        for name, obj in originals.items():  # methods and the torch.ops namespace
            module, _, path = name.rpartition(".")
            if name.startswith("torch.nn.") and name.count(".") == 3 and name[len("torch.nn."):].split(".")[0][:1].isupper():
                cls_name, meth = name[len("torch.nn."):].split(".", 1)
                cls = getattr(nn, cls_name)
                if meth in vars(cls):  # inherited methods are patched on the class that defines them
                    patched.append((cls, meth, vars(cls)[meth]))
                    setattr(cls, meth, _Stub(name, log))
            elif name.startswith("torch.ops.torchvision."):
                ns = torch.ops.torchvision
                patched.append((ns, path, obj))
                setattr(ns, path, _Stub(name, log))
        depth = torch._C._len_torch_dispatch_stack()
        mode.__enter__()
        entered = True
        state = _dispatch_state()
        yield log
        still = (torch._C._len_torch_dispatch_stack() == depth + 1
                 and torch._C._get_dispatch_stack_at(depth) is mode and _dispatch_state() == state)
        if not still:
            log.append("a way out of the grading guard (the dispatch mode was removed or bypassed)")
    finally:
        for owner, attr, value in reversed(patched):
            setattr(owner, attr, value)
        if entered:
            _leave(mode)
    if log:
        raise ForbiddenCallError(
            f"your code called {log[0]}, the library version of what this exercise asks you to build, "
            "or a way around the check for it (the error was caught inside your code, but the call still "
            "counts); implement it yourself"
        )


def _leave(mode: Any) -> None:
    """Take ``mode`` off the dispatch stack wherever it is now, leaving the other modes as they are."""
    from torch.utils import _python_dispatch as pd  # noqa: PLC0415

    n = torch._C._len_torch_dispatch_stack()
    if n and torch._C._get_dispatch_stack_at(n - 1) is mode:
        mode.__exit__(None, None, None)
        return
    above = []
    while torch._C._len_torch_dispatch_stack():
        top = pd._pop_mode()
        if top is mode:
            break
        above.append(top)
    for m in reversed(above):
        pd._push_mode(m)


def grading() -> bool:
    """True while nbgrader executes the notebook (``NBGRADER_EXECUTION`` is ``autograde`` or ``validate``)."""
    import os  # noqa: PLC0415

    return os.environ.get("NBGRADER_EXECUTION", "") in ("autograde", "validate")


def budget(student: Any, grading_value: Any) -> Any:
    """Training budget knob for test cells: ``epochs = checks.budget(student=5, grading_value=2)``.

    Returns ``grading_value`` while nbgrader grades the notebook (keeps grading on a 2-core CPU short and
    the same for every student) and ``student`` when a student runs the notebook themselves.
    """
    return grading_value if grading() else student


def _exact(x: Any) -> bool:
    return _orig("builtins", "type")(x) is _REFS["torch.Tensor"]


def _clone_args(args: tuple, kwargs: dict) -> tuple[list, dict]:
    clone = _orig("torch", "Tensor.clone")
    return ([clone(a) if _exact(a) else a for a in args],
            {k: clone(v) if _exact(v) else v for k, v in kwargs.items()})


def call(fn: Callable, *args: Any, what: str | None = None, **kwargs: Any) -> Any:
    """Run the student's ``fn(*args, **kwargs)`` with the library forbidden and inputs watched.

    Raises:
        ForbiddenCallError: ``fn`` used a forbidden library operation.
        GradingFailure: ``fn`` changed one of its tensor arguments in place.
    """
    what = what or getattr(fn, "__name__", "your function")
    before_args, before_kwargs = _clone_args(args, kwargs)
    with forbid_library(fn):
        out = fn(*args, **kwargs)
    equal = _orig("torch", "equal")
    pairs = list(zip(args, before_args)) + [(kwargs[k], before_kwargs[k]) for k in kwargs]
    for i, (now, before) in enumerate(pairs):
        if _exact(before) and not (_exact(now) and now.shape == before.shape and now.dtype == before.dtype
                                   and equal(now, before)):
            raise GradingFailure(f"{what} modified its input tensor argument #{i + 1} in place; "
                                 "work on a copy (e.g. x.clone()) or build new tensors")
    return out


def assert_tensor(actual: Any, what: str) -> None:
    """Fail unless ``actual`` is exactly a ``torch.Tensor`` (a subclass could lie about its values)."""
    assert_untampered()
    if not _exact(actual):
        raise GradingFailure(f"{what} should return a torch.Tensor, got {_orig('builtins', 'type')(actual).__name__}"
                             " (exactly torch.Tensor, not a subclass or another type)")


def assert_shape(actual: Any, shape: tuple, what: str) -> None:
    """Fail unless ``actual`` is a tensor (exactly ``torch.Tensor``) of exactly ``shape``."""
    assert_tensor(actual, what)
    if tuple(actual.shape) != tuple(shape):
        raise GradingFailure(f"{what} returned shape {tuple(actual.shape)}, expected {tuple(shape)}")


def assert_close(actual: Any, expected: Tensor, what: str, hint: str = "", *, atol: float = 1e-5,
                 rtol: float = 1e-4, check_dtype: bool = False, float_only: bool = False) -> None:
    """Compare with the trusted ``torch.testing.assert_close`` captured at the start.

    Args:
        actual: the student's result.
        expected (Tensor): the reference result.
        what: names the case for the message, e.g. ``"box_iou on disjoint boxes"``.
        hint: a nudge shown when values differ (say what to look at, not the code).
        check_dtype: also require the exact dtype; ``float_only`` only requires a floating dtype.
    """
    assert_shape(actual, tuple(expected.shape), what)
    if check_dtype and actual.dtype != expected.dtype:
        raise GradingFailure(f"{what} returned dtype {actual.dtype}, expected {expected.dtype}")
    if float_only and not actual.is_floating_point():
        raise GradingFailure(f"{what} returned dtype {actual.dtype}, expected a floating-point tensor")
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    try:
        _orig("torch.testing", "assert_close")(a, e, atol=atol, rtol=rtol, equal_nan=False)
    except AssertionError:
        bad = int((~_orig("torch", "isclose")(a, e, rtol=rtol, atol=atol)).sum())
        raise GradingFailure(f"{what}: {bad} of {e.numel()} values are wrong. {hint}".strip()) from None


def assert_equal(actual: Any, expected: Tensor, what: str, hint: str = "", *, check_dtype: bool = True) -> None:
    """Exact comparison (indices, integer outputs) with the trusted ``torch.equal``."""
    assert_tensor(actual, what)
    if actual.dim() == 1 and expected.dim() == 1 and actual.numel() != expected.numel():
        raise GradingFailure(f"{what} returned {actual.numel()} elements, expected {expected.numel()}. {hint}".strip())
    assert_shape(actual, tuple(expected.shape), what)
    if check_dtype and actual.dtype != expected.dtype:
        raise GradingFailure(f"{what} returned dtype {actual.dtype}, expected {expected.dtype}")
    if not _orig("torch", "equal")(actual.detach().cpu().to(expected.dtype), expected.cpu()):
        raise GradingFailure(f"{what}: the result differs from the reference. {hint}".strip())


# Keep references that `capture` may check even when the names above are rebound by student code.
_ = (builtins, math, np, F)

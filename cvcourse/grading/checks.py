"""Helpers for the hidden tests of the graded notebooks: trusted comparisons, tamper and cheat checks.

A graded notebook runs student code and hidden tests in one kernel, so student code could replace
``torch.equal``, ``torch.testing.assert_close`` or builtins to make wrong answers pass, or call the
library (``torchvision.ops.nms``) instead of implementing it. This module answers both:

* :func:`capture` runs in the notebook's first cell (a locked 0-point test cell that nbgrader
  restores if it is deleted), *before* any student code. It keeps the original objects of
  :data:`WATCHED` (comparison functions, builtins, the library references) and the code objects
  of the Python ones.
* every check first calls :func:`assert_untampered`, which fails with a ``TamperingError`` saying
  which function was replaced (object swapped or ``__code__`` rewritten), and then compares with
  the captured originals, never with what the names point to now.
* :func:`call` runs a student function with :func:`forbid_library` active: every entry of
  :data:`FORBIDDEN` (``torchvision.ops.*``, ``torch.ops.torchvision.*``, ``cvcourse.ops.*``,
  ``F.max_unpool2d``, ``nn.MaxUnpool2d``, ``F.conv_transpose2d``, ``nn.ConvTranspose2d``,
  ``F.interpolate``, ``nn.Upsample``, ...) is replaced, in every loaded module that exposes it,
  by a stub that raises ``ForbiddenCallError``; references the student's code holds itself
  (``from torchvision.ops import nms as my_nms``, default arguments, closures, helper functions and
  classes of the notebook) are found by walking the names its code uses. ``call`` also fails when
  the function modified its tensor arguments in place.
* below the Python names, :func:`forbid_library` also watches PyTorch's dispatcher (a
  ``TorchDispatchMode``): the kernels in :data:`FORBIDDEN_OPS`, and a transposed ``aten::convolution``,
  are refused however they are reached (``torch.ops.aten.max_unpool2d``, ``torch._C._nn...``).

Not caught (documented for instructors): code that replaces this module's own functions, patches
IPython's error display, leaves the dispatch mode on purpose (private ``torch.utils._python_dispatch``
calls), or reaches the forbidden operations through a route not listed (e.g. a C++ extension compiled
on the fly); a human reading flagged notebooks remains the last line.

Hidden tests must reach the references through :func:`reference`, not by importing them into the
notebook's namespace (the alias walk would flag them as the student's).
"""

from __future__ import annotations

import builtins
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
    "assert_equal", "assert_shape", "GradingFailure", "TamperingError", "ForbiddenCallError",
    "WATCHED", "FORBIDDEN", "grading", "budget",
]


class GradingFailure(AssertionError):
    """A hidden test found a wrong answer; the message says what, not how to fix it in code."""


class TamperingError(GradingFailure):
    """A function that the tests rely on was replaced after the notebook started."""


class ForbiddenCallError(GradingFailure):
    """The student's function used the library operation it is meant to implement."""


#: (module, attribute path) of every object the checks rely on; captured by :func:`capture`.
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

#: Library operations that graded functions must not call: (module, attribute path).
FORBIDDEN: tuple[tuple[str, str], ...] = (
    ("torchvision.ops", "nms"), ("torchvision.ops", "batched_nms"), ("torchvision.ops", "box_iou"),
    ("torchvision.ops", "box_area"), ("torchvision.ops", "generalized_box_iou"),
    ("torchvision.ops", "distance_box_iou"), ("torchvision.ops", "complete_box_iou"),
    ("torchvision.ops", "remove_small_boxes"), ("torchvision.ops", "clip_boxes_to_image"),
    ("torchvision.ops.boxes", "_batched_nms_coordinate_trick"), ("torchvision.ops.boxes", "_batched_nms_vanilla"),
    ("torchvision.ops.boxes", "_box_inter_union"),
    ("torch.ops.torchvision", "nms"),
    ("torch.nn.functional", "max_unpool1d"), ("torch.nn.functional", "max_unpool2d"),
    ("torch.nn.functional", "max_unpool3d"), ("torch.nn.functional", "conv_transpose1d"),
    ("torch.nn.functional", "conv_transpose2d"), ("torch.nn.functional", "conv_transpose3d"),
    ("torch.nn.functional", "interpolate"), ("torch.nn.functional", "upsample"),
    ("torch.nn.functional", "upsample_nearest"), ("torch.nn.functional", "upsample_bilinear"),
    ("torch", "conv_transpose1d"), ("torch", "conv_transpose2d"), ("torch", "conv_transpose3d"),
    ("torch", "max_unpool2d"), ("torch._C._nn", "max_unpool2d"), ("torch._C._nn", "upsample_nearest2d"),
    ("torch._C._nn", "_upsample_nearest_exact2d"), ("torch._C._nn", "upsample_bilinear2d"),
    ("torch", "convolution"), ("torch", "_convolution"),
    ("torch.nn", "MaxUnpool2d.forward"), ("torch.nn", "ConvTranspose2d.forward"),
    ("torch.nn", "ConvTranspose1d.forward"), ("torch.nn", "Upsample.forward"),
    ("torch.nn", "UpsamplingNearest2d.forward"), ("torch.nn", "UpsamplingBilinear2d.forward"),
)
#: Every public callable of these modules is forbidden too (the course's reference library).
FORBIDDEN_MODULES = ("cvcourse.ops",)

#: Dispatcher kernels that graded functions must not reach by any route (schema names). A transposed
#: ``aten::convolution`` is refused as well; a plain one (``F.conv2d``) stays allowed.
FORBIDDEN_OPS = frozenset({
    "torchvision::nms", "torchvision::roi_align", "torchvision::roi_pool", "torchvision::ps_roi_align",
    "torchvision::ps_roi_pool", "aten::max_unpool2d", "aten::max_unpool3d", "aten::upsample_nearest1d",
    "aten::upsample_nearest2d", "aten::upsample_nearest3d", "aten::_upsample_nearest_exact1d",
    "aten::_upsample_nearest_exact2d", "aten::_upsample_nearest_exact3d", "aten::upsample_bilinear2d",
    "aten::_upsample_bilinear2d_aa", "aten::upsample_bicubic2d", "aten::upsample_linear1d",
    "aten::upsample_trilinear3d",
})

_SNAPSHOT: dict[str, tuple[str, str, Any, Any]] | None = None  # name -> (module, path, object, code)
_REFS: dict[str, Any] = {}
_LATE = False


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
        obj = sys.modules.get(module) or __import__(module, fromlist=["_"])
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _key(module: str, path: str) -> str:
    return f"{module}.{path}"


def _code_of(obj: Any) -> Any:
    return getattr(obj, "__code__", None)


def _forbidden_targets() -> dict[str, tuple[str, str, Any]]:
    found: dict[str, tuple[str, str, Any]] = {}
    try:
        import torchvision.ops  # noqa: F401, PLC0415  (loads the torchvision.* entries and C++ ops)
    except ImportError:  # pragma: no cover  (torchvision is a course dependency)
        pass
    for module, path in FORBIDDEN:
        try:
            found[_key(module, path)] = (module, path, _resolve(module, path))
        except (ImportError, AttributeError, RuntimeError):
            continue
    for name in FORBIDDEN_MODULES:
        try:
            mod = __import__(name, fromlist=["_"])
        except ImportError:
            continue
        for attr in getattr(mod, "__all__", [a for a in dir(mod) if not a.startswith("_")]):
            obj = getattr(mod, attr, None)
            if callable(obj) and not isinstance(obj, type):
                found[f"{name}.{attr}"] = (name, attr, obj)
    return found


def capture() -> None:
    """Remember the trusted originals; call in the notebook's first cell, before any student code.

    Calling it again later does nothing (a student cannot refresh the snapshot after tampering).
    """
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
    for name in ("assert_untampered", "assert_close", "assert_equal", "call", "forbid_library", "reference",
                 "assert_shape"):
        fn = globals()[name]
        snap[f"{__name__}.{name}"] = (__name__, name, fn, fn.__code__)
    refs = {name: obj for name, (_, _, obj) in refs.items()}
    _REFS.update(refs)
    _SNAPSHOT = snap


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
    changed = []
    for name, (module, path, obj, code) in _SNAPSHOT.items():  # type: ignore[union-attr]
        try:
            now = _resolve(module, path)
        except (ImportError, AttributeError, RuntimeError):
            changed.append(name)
            continue
        if now is not obj or (code is not None and _code_of(now) is not code):
            changed.append(name)
    if changed:
        raise TamperingError(
            "tampering detected: " + ", ".join(changed) + " was replaced or modified after the notebook started. "
            "The tests cannot trust their comparisons, so this test fails. Do not reassign library, builtin or "
            "grading functions in your code."
        )


def reference(name: str) -> Callable:
    """The trusted original of a forbidden library function, e.g. ``reference("torchvision.ops.nms")``."""
    assert_untampered()
    try:
        return _SNAPSHOT[name][2]  # type: ignore[index]
    except KeyError:
        raise KeyError(f"no captured reference named {name!r}") from None


class _Stub:
    """Stands in for a forbidden function while student code runs."""

    def __init__(self, name: str, log: list[str]) -> None:
        self._name, self._log = name, log

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._log.append(self._name)
        raise ForbiddenCallError(
            f"your code called {self._name}, the library version of what this exercise asks you to build; "
            "implement it with basic tensor operations instead"
        )

    def __get__(self, obj: Any, objtype: Any = None) -> Any:  # used as a method (nn.Module.forward)
        return self

    def __getattr__(self, item: str) -> Any:  # torch.ops.torchvision.nms.default
        if item.startswith("__"):
            raise AttributeError(item)
        return self


def _walk_references(fn: Any, forbidden_ids: dict[int, str]) -> list[str]:
    """Names under which the student's code holds a forbidden object itself."""
    found: list[str] = []
    seen: set[int] = set()
    todo: list[Any] = [fn]
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, type):
            todo += [v for v in vars(obj).values() if isinstance(v, (types.FunctionType, staticmethod,
                                                                    classmethod, property))]
            continue
        if isinstance(obj, (staticmethod, classmethod)):
            todo.append(obj.__func__)
            continue
        if isinstance(obj, property):
            todo += [f for f in (obj.fget, obj.fset) if f is not None]
            continue
        if isinstance(obj, types.MethodType):
            todo.append(obj.__func__)
            continue
        if isinstance(obj, nn.Module):
            todo.append(type(obj))
            continue
        if not isinstance(obj, types.FunctionType):
            continue
        if obj.__module__ not in ("__main__", None) and not obj.__module__.startswith("__main__"):
            continue  # library code is not the student's
        codes, names = [obj.__code__], set()
        while codes:
            code = codes.pop()
            names.update(code.co_names)
            codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
        values = [(n, obj.__globals__[n]) for n in names if n in obj.__globals__]
        values += [(f"closure of {obj.__name__}", c.cell_contents) for c in obj.__closure__ or ()
                   if _cell_filled(c)]
        values += [(f"default argument of {obj.__name__}", d) for d in obj.__defaults__ or ()]
        values += [(f"default argument of {obj.__name__}", d) for d in (obj.__kwdefaults__ or {}).values()]
        for label, value in values:
            if id(value) in forbidden_ids:
                found.append(f"{forbidden_ids[id(value)]} (as `{label}`)")
            elif isinstance(value, (types.FunctionType, type, types.MethodType, nn.Module)):
                todo.append(value)
    return found


class _ForbidOps(TorchDispatchMode):
    """Refuses the kernels of :data:`FORBIDDEN_OPS` (and transposed convolutions) while active, logging each."""

    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        name = func._schema.name  # "namespace::op", the same for every overload
        if name in FORBIDDEN_OPS or (name == "aten::convolution" and len(args) > 6 and args[6]):
            label = f"{name}{' (transposed)' if name == 'aten::convolution' else ''}"
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
            first (aliases such as ``from torchvision.ops import nms as my_nms``).

    Yields:
        The list of forbidden names called in the block (also when student code swallowed the error).
    """
    assert_untampered()
    originals = {name: obj for name, obj in _REFS.items()}
    ids = {id(obj): name for name, obj in originals.items()}
    if fn is not None:
        held = _walk_references(fn, ids)
        if held:
            raise ForbiddenCallError(
                "your code refers to " + ", ".join(held) + ", the library version of what this exercise asks "
                "you to build; implement it with basic tensor operations instead"
            )
    log: list[str] = []
    patched: list[tuple[Any, str, Any]] = []
    prefixes = ("torch", "torchvision", "cvcourse")
    try:
        for mod_name, mod in list(sys.modules.items()):
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
            if name.startswith("torch.nn.") and "." in name[len("torch.nn."):]:
                cls_name, meth = name[len("torch.nn."):].split(".", 1)
                cls = getattr(nn, cls_name)
                if meth in vars(cls):  # inherited methods are patched on the class that defines them
                    patched.append((cls, meth, vars(cls)[meth]))
                    setattr(cls, meth, _Stub(name, log))
            elif name.startswith("torch.ops.torchvision."):
                ns = torch.ops.torchvision
                patched.append((ns, path, obj))
                setattr(ns, path, _Stub(name, log))
        with _ForbidOps(log):
            yield log
    finally:
        for owner, attr, value in reversed(patched):
            setattr(owner, attr, value)
    if log:
        raise ForbiddenCallError(
            f"your code called {log[0]}, the library version of what this exercise asks you to build "
            "(the error was caught inside your code, but the call still counts); implement it yourself"
        )


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


def _clone_args(args: tuple, kwargs: dict) -> tuple[list, dict]:
    clone = _orig("torch", "Tensor.clone")
    return ([clone(a) if isinstance(a, Tensor) else a for a in args],
            {k: clone(v) if isinstance(v, Tensor) else v for k, v in kwargs.items()})


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
        if isinstance(before, Tensor) and not (now.shape == before.shape and now.dtype == before.dtype
                                               and equal(now, before)):
            raise GradingFailure(f"{what} modified its input tensor argument #{i + 1} in place; "
                                 "work on a copy (e.g. x.clone()) or build new tensors")
    return out


def assert_shape(actual: Any, shape: tuple, what: str) -> None:
    """Fail unless ``actual`` is a tensor of exactly ``shape``."""
    assert_untampered()
    if not _orig("builtins", "isinstance")(actual, Tensor):
        raise GradingFailure(f"{what} should return a torch.Tensor, got {type(actual).__name__}")
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
    if _orig("builtins", "isinstance")(actual, Tensor) and actual.dim() == 1 and expected.dim() == 1 \
            and actual.numel() != expected.numel():
        raise GradingFailure(f"{what} returned {actual.numel()} elements, expected {expected.numel()}. {hint}".strip())
    assert_shape(actual, tuple(expected.shape), what)
    if check_dtype and actual.dtype != expected.dtype:
        raise GradingFailure(f"{what} returned dtype {actual.dtype}, expected {expected.dtype}")
    if not _orig("torch", "equal")(actual.detach().cpu().to(expected.dtype), expected.cpu()):
        raise GradingFailure(f"{what}: the result differs from the reference. {hint}".strip())


# Keep references that `capture` may check even when the names above are rebound by student code.
_ = (builtins, math, np, F)

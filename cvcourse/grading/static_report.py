"""Static report: the constructs in a submission's cells that a grader should read by hand.

No check that runs in the student's own kernel is complete (see :mod:`cvcourse.grading.checks`,
"Not caught"), so every submission also gets this report: the student's cells are parsed (IPython
magics and ``!`` commands are first turned into the ``get_ipython()`` calls they stand for) and
every use of something a correct solution never needs is listed with its cell and line: the
IPython shell, ``sys.modules``, frames, ``exec``/``eval``/``compile``, ``inspect``, ``ctypes``,
``gc``, ``importlib``, torch's private modules and modes, links and fifos on disk, imports of the
libraries the assignments re-implement, assignments to attributes of library modules, rebinding
the names the hidden tests use, and so on (:data:`NAMES`, :data:`ATTRIBUTES`, :data:`MODULES`).

A finding is not a verdict: it says where to look. The correct sample submissions of the test
suite have none.

API: ``report(nb, release=None) -> list[Finding]`` for one notebook (cells whose text is that of a
release cell are skipped; without ``release``, locked nbgrader cells are skipped), ``summary(findings)``
for one line of a grade table or CSV. Command line::

    python -m cvcourse.grading.static_report NOTEBOOK.ipynb [--release RELEASE.ipynb]
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

__all__ = ["Finding", "report", "summary", "NAMES", "ATTRIBUTES", "MODULES", "REBOUND"]

#: Bare names (calls or references) that a correct solution does not need.
NAMES: dict[str, str] = {
    "get_ipython": "the IPython shell", "exec": "exec", "eval": "eval", "compile": "compile",
    "__import__": "__import__", "globals": "globals()", "locals": "locals()", "vars": "vars()",
    "setattr": "setattr", "delattr": "delattr", "breakpoint": "breakpoint", "open": "open (files)",
    "__builtins__": "__builtins__", "memoryview": "memoryview",
}
#: Attribute names (``x.NAME``) that reach the interpreter, the shell or torch's internals.
ATTRIBUTES: dict[str, str] = {
    "modules": "sys.modules", "_getframe": "frames (sys._getframe)", "f_back": "frames", "f_locals": "frames",
    "f_globals": "frames", "tb_frame": "frames", "gi_frame": "frames", "_current_frames": "frames",
    "displayhook": "the display hook", "excepthook": "the exception hook", "settrace": "a trace hook",
    "setprofile": "a profile hook", "monitoring": "sys.monitoring", "addaudithook": "an audit hook",
    "input_transformers_post": "IPython input transformers", "input_transformers_cleanup": "IPython input transformers",
    "input_transformer_manager": "IPython input transformers", "ast_transformers": "IPython AST transformers",
    "transform_cell": "IPython's cell pipeline", "run_cell": "IPython's cell pipeline", "run_code": "IPython's cell pipeline",
    "showtraceback": "IPython's error display", "_showtraceback": "IPython's error display", "events": "IPython events",
    "user_ns": "IPython's namespace", "kernel": "the kernel object", "display_pub": "IPython's display publisher",
    "_C": "torch._C", "_python_dispatch": "torch's dispatch modes", "_pop_mode": "torch's dispatch modes",
    "_push_mode": "torch's dispatch modes", "TorchDispatchMode": "a torch dispatch mode",
    "TorchFunctionMode": "a torch function mode", "__torch_function__": "__torch_function__ (a tensor subclass)",
    "__torch_dispatch__": "__torch_dispatch__", "as_subclass": "a tensor subclass", "_make_subclass": "a tensor subclass",
    "symlink": "os.symlink", "link": "os.link (hard link)", "mkfifo": "os.mkfifo", "mknod": "os.mknod",
    "chmod": "os.chmod", "chown": "os.chown", "system": "a shell command", "popen": "a shell command",
    "fork": "os.fork", "kill": "os.kill", "_exit": "os._exit", "execv": "os.exec*", "environ": "os.environ",
    "__subclasses__": "object.__subclasses__", "__globals__": "a function's __globals__", "__code__": "__code__",
    "__closure__": "__closure__", "__defaults__": "__defaults__", "__kwdefaults__": "__defaults__",
    "__dict__": "__dict__", "__class__": "__class__", "__bases__": "__bases__", "__mro__": "__mro__",
    "cell_contents": "a closure cell", "get_referrers": "gc", "get_objects": "gc",
    "getsource": "inspect.getsource", "conv2d_input": "torch.nn.grad", "conv_transpose2d": "conv_transpose2d",
    "max_unpool2d": "max_unpool2d", "interpolate": "interpolate", "upsample": "upsample",
    "convolution_backward": "aten::convolution_backward",
}
#: Imported modules (or their submodules) to read: the libraries re-implemented and the introspection ones.
MODULES: dict[str, str] = {
    "cvcourse.ops": "cvcourse.ops (the reference library)", "cvcourse.grading": "cvcourse.grading (the grader)",
    "cvcourse.models": "cvcourse.models", "cvcourse._checks": "cvcourse internals",
    "torchvision.ops": "torchvision.ops", "torchvision": "torchvision", "torch.nn.grad": "torch.nn.grad",
    "torch._C": "torch._C", "torch.utils._python_dispatch": "torch's dispatch modes", "torch.overrides": "torch.overrides",
    "torch._ops": "torch._ops", "torch.library": "torch.library", "torch.utils.cpp_extension": "C++ extensions",
    "ctypes": "ctypes", "cffi": "cffi", "inspect": "inspect", "importlib": "importlib", "gc": "gc",
    "linecache": "linecache", "builtins": "builtins", "dis": "dis", "types": "types", "os": "os",
    "shutil": "shutil", "pathlib": "pathlib", "subprocess": "subprocess", "signal": "signal",
    "threading": "threading", "multiprocessing": "multiprocessing", "socket": "socket", "atexit": "atexit",
    "weakref": "weakref", "IPython": "IPython", "ipykernel": "ipykernel", "nbgrader": "nbgrader",
    "nbformat": "nbformat", "pickle": "pickle", "marshal": "marshal", "code": "code", "runpy": "runpy",
}
#: Names the notebook and its hidden tests rely on; a student's cell should not assign them.
REBOUND = frozenset({"checks", "torch", "F", "nn", "np", "builtins", "__builtins__", "torchvision", "sys", "In", "Out"})


#: Names that usually hold library modules in the notebooks; assigning their attributes patches the library.
LIBRARY_ROOTS = frozenset({"torch", "F", "nn", "np", "numpy", "math", "builtins", "checks", "sys", "os", "torchvision",
                           "cvcourse", "IPython"})


@dataclass(frozen=True)
class Finding:
    """One construct worth reading: where it is (cell index, cell id, nbgrader grade_id, line) and what."""

    cell: int
    cell_id: str
    grade_id: str
    line: int
    construct: str
    text: str

    def __str__(self) -> str:
        where = self.grade_id or self.cell_id or f"#{self.cell}"
        return f"cell {where} line {self.line}: {self.construct}: {self.text}"


def _python_source(source: str) -> str:
    """The cell as plain Python: magics and ``!`` commands become ``get_ipython()`` calls, as IPython runs them."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager  # noqa: PLC0415

        return TransformerManager().transform_cell(source)
    except Exception:  # noqa: BLE001  (no IPython, or a cell it cannot transform: parse it as it is)
        return source


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _module_label(name: str) -> str | None:
    for prefix in sorted(MODULES, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return MODULES[prefix]
    return None


class _Visitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []
        self.modules: set[str] = set()  # names bound to imported modules in this cell

    def add(self, node: ast.AST, what: str) -> None:
        self.found.append((getattr(node, "lineno", 0), what))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            label = _module_label(alias.name)
            if label:
                self.add(node, f"imports {alias.name} ({label})")
            self.modules.add(alias.asname or alias.name.split(".")[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        label = _module_label(base)
        for alias in node.names:
            full = f"{base}.{alias.name}" if base else alias.name
            sub = _module_label(full)
            if sub or label:
                self.add(node, f"imports {full} from {base or '.'} ({sub or label})")
        if node.level:
            self.add(node, "relative import")

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in NAMES and not isinstance(node.ctx, ast.Store):
            self.add(node, NAMES[node.id])
        if isinstance(node.ctx, (ast.Store, ast.Del)) and node.id in REBOUND:
            self.add(node, f"assigns the name `{node.id}` the tests use")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in ATTRIBUTES and (node.attr != "modules" or _dotted(node).endswith("sys.modules")):
            self.add(node, ATTRIBUTES[node.attr] + f" ({_dotted(node) or '.' + node.attr})")
        root = (_dotted(node) or ".").split(".")[0]
        if isinstance(node.ctx, (ast.Store, ast.Del)) and (root in self.modules or root in LIBRARY_ROOTS):
            self.add(node, f"assigns an attribute of a library module ({_dotted(node)})")
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        for name in node.names:
            if name in REBOUND:
                self.add(node, f"declares `{name}` global")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for base in node.bases:
            name = _dotted(base)
            if name.split(".")[-1] in ("Tensor", "TorchDispatchMode", "TorchFunctionMode", "ModuleType", "type"):
                self.add(node, f"class {node.name} derives from {name}")
        for kw in node.keywords:
            if kw.arg == "metaclass":
                self.add(node, f"class {node.name} has a metaclass")
        self.generic_visit(node)


def _cell_findings(index: int, cell: nbformat.NotebookNode) -> list[Finding]:
    meta = cell.get("metadata", {})
    grade_id = meta.get("nbgrader", {}).get("grade_id", "")
    cell_id = cell.get("id", "")
    source = cell.get("source", "")
    lines = source.splitlines()
    python = _python_source(source)
    try:
        tree = ast.parse(python)
    except SyntaxError as err:
        return [Finding(index, cell_id, grade_id, err.lineno or 0, "does not parse as Python", str(err.msg))]
    visitor = _Visitor()
    visitor.visit(tree)
    out = []
    for line, what in sorted(set(visitor.found)):
        text = lines[line - 1].strip() if 0 < line <= len(lines) else ""
        out.append(Finding(index, cell_id, grade_id, line, what, text[:120]))
    return out


def report(nb: nbformat.NotebookNode, release: nbformat.NotebookNode | None = None) -> list[Finding]:
    """Constructs to read by hand in the student's code cells of ``nb``.

    Args:
        nb: the handed-in notebook.
        release: the release notebook; cells whose text is exactly that of a release cell are skipped
            (the course's own code). Without it, cells that nbgrader marks as locked are skipped.

    Returns:
        The findings, in cell and line order.
    """
    known = {c.source for c in release.cells} if release is not None else set()
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code":
            continue
        if release is not None and cell.source in known:
            continue
        if release is None and cell.get("metadata", {}).get("nbgrader", {}).get("locked"):
            continue
        found += _cell_findings(i, cell)
    return found


def summary(findings: list[Finding], limit: int = 6) -> str:
    """One line for a grade table or CSV: the first ``limit`` findings, then how many more."""
    if not findings:
        return ""
    parts = [f"{f.construct} (cell {f.grade_id or f.cell_id or f.cell}, line {f.line})" for f in findings[:limit]]
    more = f"; and {len(findings) - limit} more" if len(findings) > limit else ""
    return "static report: " + "; ".join(parts) + more


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cvcourse.grading.static_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--release", type=Path, help="the release notebook (its cells are not reported)")
    args = parser.parse_args(argv)
    release = nbformat.read(args.release, as_version=4) if args.release else None
    any_found = False
    for path in args.notebooks:
        findings = report(nbformat.read(path, as_version=4), release)
        any_found |= bool(findings)
        print(f"{path}: {len(findings)} finding(s)")
        for f in findings:
            print(f"  {f}")
    return 1 if any_found else 0


if __name__ == "__main__":
    sys.exit(main())

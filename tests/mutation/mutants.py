"""A small source-level mutator: each mutant is one edit of one file's text.

Why not mutmut: mutmut 3 mutates only inside functions (its trampolines
switch between a function's variants), so the move tables of
``service/lifecycle.py`` and the other module-level mappings (verdict
statuses, paid states, event names) would never be mutated, and it has no
operator that drops or adds an element of a set or a tuple. This one walks
the whole module with :mod:`ast` and edits the source text at the node's
position, so a mutant's diff is one readable change and everything else is
byte for byte the file.

Operators (``Mutant.operator``):

- ``compare``: ``==``/``!=``, ``<``/``<=``, ``>``/``>=``, ``in``/``not in``, ``is``/``is not``;
- ``boolean``: ``and``/``or``; ``not_removed``: ``not x`` -> ``x``;
  ``condition``: ``if x`` -> ``if not (x)`` (when ``x`` is no comparison nor ``and``/``or``);
- ``arith``: ``+``/``-``, ``*``/``/``, ``//``, ``%`` -> ``/``;
- ``number``: ``n`` -> ``n + 1``; ``string``: ``"s"`` -> ``"XXsXX"``; ``bool``: ``True``/``False``;
- ``drop``: an element of a set, tuple or list literal, an entry of a dict literal;
- ``add``: a state added to an entry of a move table (a dict whose values
  are collections of names: the pool is every name the table uses);
- ``statement``: a call statement or a ``raise`` -> ``pass``; ``return``: ``return x`` -> ``return None``;
  ``assign``: ``name = x`` -> ``name = None`` (inside functions).

Not mutated, by design (no behaviour a test should pin): docstrings,
annotations, ``__all__``, f-strings, logging calls, ``__repr__``, and the
message (first positional argument) of an exception being built; an
exception's ``code=`` is mutated like any string.
"""
from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass
from typing import Iterator

LOGGERS = {"log", "logger", "logging"}
SKIP_FUNCTIONS = {"__repr__"}

_CMP_TOKENS = {
    ast.Eq: ("==", "!="), ast.NotEq: ("!=", "=="),
    ast.Lt: ("<", "<="), ast.LtE: ("<=", "<"), ast.Gt: (">", ">="), ast.GtE: (">=", ">"),
    ast.In: ("in", "not in"), ast.NotIn: ("not in", "in"),
    ast.Is: ("is", "is not"), ast.IsNot: ("is not", "is"),
}
_BIN_TOKENS = {
    ast.Add: ("+", "-"), ast.Sub: ("-", "+"), ast.Mult: ("*", "/"), ast.Div: ("/", "*"),
    ast.FloorDiv: ("//", "/"), ast.Mod: ("%", "/"),
}


@dataclass(frozen=True)
class Mutant:
    path: str        # relative to the repository root
    scope: str       # the enclosing function or module-level name ("<module>" otherwise)
    line: int        # 1-based, of the edit's start
    operator: str
    original: str    # the text replaced
    replacement: str
    start: int       # byte offsets of the edit in the file
    end: int
    occurrence: int = 0  # among mutants with the same scope, operator, original and replacement
    runtime: bool = True  # runs when a function is called (False: at import: a table, a default value)

    @property
    def key(self) -> str:
        """Stable across edits elsewhere in the file: no line numbers in it."""
        return (f"{self.path}::{self.scope}::{self.operator}::{_keyed(self.original)} -> {_keyed(self.replacement)}"
                f"#{self.occurrence}")

    @property
    def id(self) -> str:
        return hashlib.sha1(self.key.encode("utf-8")).hexdigest()[:10]

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.replacement.encode("utf-8") + source[self.end:]

    def describe(self) -> str:
        return f"{self.path}:{self.line} [{self.operator}] {_short(self.original)!s} -> {_short(self.replacement)!s}"


def _keyed(text: str) -> str:
    """The text as a key part: short, and still unique when it had to be cut."""
    one = " ".join(text.split())
    return one if len(one) <= 80 else one[:60] + "…" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:8]


def _short(text: str, limit: int = 80) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[: limit - 1] + "…"


class _Source:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.starts = [0]
        for line in data.split(b"\n")[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def text(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8")

    def node_text(self, node: ast.AST) -> str:
        return self.text(*self.span(node))

    def line_of(self, offset: int) -> int:
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _is_log_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id in LOGGERS)


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


class _Walker:
    def __init__(self, path: str, data: bytes, only: frozenset[str] | None) -> None:
        self.path = path
        self.src = _Source(data)
        self.only = only
        self.found: list[Mutant] = []
        self.skip: set[int] = set()  # ids of nodes not to mutate (and not to descend into)
        self.silent: set[int] = set()  # string constants not to mutate (exception messages)
        self.depth = 0  # inside how many function bodies

    # -- emitting ---------------------------------------------------------------------------

    def emit(self, scope: str, operator: str, start: int, end: int, replacement: str) -> None:
        original = self.src.text(start, end)
        if original == replacement:
            return
        self.found.append(Mutant(self.path, scope, self.src.line_of(start), operator, original, replacement, start,
                                 end, runtime=self.depth > 0))

    def emit_token(self, scope: str, operator: str, left: ast.AST, right: ast.AST, old: str, new: str) -> None:
        """Replace the token ``old`` found between two nodes' texts."""
        start = self.src.offset(left.end_lineno, left.end_col_offset)
        end = self.src.offset(right.lineno, right.col_offset)
        gap = self.src.text(start, end)
        pattern = r"\b" + r"\s+".join(map(re.escape, old.split())) + r"\b" if old[0].isalpha() else re.escape(old)
        if old in ("<", ">"):
            pattern = re.escape(old) + r"(?!=)"
        match = re.search(pattern, gap)
        if match is None:
            return
        a = start + len(gap[: match.start()].encode("utf-8"))
        b = start + len(gap[: match.end()].encode("utf-8"))
        self.emit(scope, operator, a, b, new)

    # -- walking ----------------------------------------------------------------------------

    def module(self, tree: ast.Module) -> None:
        for stmt in tree.body:
            if _is_docstring(stmt) and stmt is tree.body[0]:
                continue
            if isinstance(stmt, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.function(stmt, stmt.name)
            elif isinstance(stmt, ast.ClassDef):
                self.klass(stmt, stmt.name)
            else:
                name = self._assigned_name(stmt)
                if name in ("__all__", "log", "logger"):
                    continue
                if self.only is not None and name not in self.only:
                    continue
                self.statement(stmt, name or "<module>", in_function=False)

    @staticmethod
    def _assigned_name(stmt: ast.stmt) -> str | None:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            return stmt.targets[0].id
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            return stmt.target.id
        return None

    def klass(self, node: ast.ClassDef, qual: str) -> None:
        for stmt in node.body:
            if _is_docstring(stmt) and stmt is node.body[0]:
                continue
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.function(stmt, f"{qual}.{stmt.name}")
            elif isinstance(stmt, ast.ClassDef):
                self.klass(stmt, f"{qual}.{stmt.name}")
            else:
                name = self._assigned_name(stmt)
                scope = f"{qual}.{name}" if name else qual
                if self.only is not None and scope not in self.only and qual not in self.only:
                    continue
                self.statement(stmt, scope, in_function=False)

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, qual: str) -> None:
        if node.name in SKIP_FUNCTIONS:
            return
        if self.only is not None and qual not in self.only and qual.split(".")[0] not in self.only:
            return
        args = node.args
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self.expr(default, qual)
        body = node.body[1:] if node.body and _is_docstring(node.body[0]) else node.body
        self.depth += 1
        for stmt in body:
            self.statement(stmt, qual, in_function=True)
        self.depth -= 1

    def block(self, stmts: list[ast.stmt], scope: str, in_function: bool) -> None:
        for stmt in stmts:
            self.statement(stmt, scope, in_function)

    def statement(self, stmt: ast.stmt, scope: str, in_function: bool) -> None:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            self.function(stmt, f"{scope}.{stmt.name}")
            return
        if isinstance(stmt, ast.ClassDef):
            self.klass(stmt, f"{scope}.{stmt.name}")
            return
        if isinstance(stmt, ast.Expr):
            if _is_log_call(stmt.value) or _is_docstring(stmt):
                return
            if isinstance(stmt.value, (ast.Call, ast.Await)):
                self.emit(scope, "statement", *self.src.span(stmt), "pass")
            self.expr(stmt.value, scope)
            return
        if isinstance(stmt, ast.Raise):
            self.emit(scope, "statement", *self.src.span(stmt), "pass")
            if isinstance(stmt.exc, ast.Call):
                self._silence_message(stmt.exc)
            if stmt.exc is not None:
                self.expr(stmt.exc, scope)
            return
        if isinstance(stmt, ast.Return):
            if stmt.value is not None and not (isinstance(stmt.value, ast.Constant) and stmt.value.value is None):
                self.emit(scope, "return", *self.src.span(stmt.value), "None")
                if isinstance(stmt.value, ast.Tuple):  # several results: an element dropped only breaks the unpacking
                    for elt in stmt.value.elts:
                        self.expr(elt, scope)
                    return
                self.expr(stmt.value, scope)
            return
        if isinstance(stmt, ast.Assign):
            if in_function and len(stmt.targets) == 1 and isinstance(stmt.targets[0], (ast.Name, ast.Attribute)) \
                    and not (isinstance(stmt.value, ast.Constant) and stmt.value.value is None):
                self.emit(scope, "assign", *self.src.span(stmt.value), "None")
            self.expr(stmt.value, scope)
            return
        if isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                self.expr(stmt.value, scope)
            return
        if isinstance(stmt, ast.AugAssign):
            self.expr(stmt.value, scope)
            return
        if isinstance(stmt, (ast.If, ast.While)):
            self.condition(stmt.test, scope)
            self.block(stmt.body, scope, in_function)
            self.block(stmt.orelse, scope, in_function)
            return
        if isinstance(stmt, (ast.For, ast.AsyncFor)):
            self.expr(stmt.iter, scope)
            self.block(stmt.body, scope, in_function)
            self.block(stmt.orelse, scope, in_function)
            return
        if isinstance(stmt, (ast.With, ast.AsyncWith)):
            for item in stmt.items:
                self.expr(item.context_expr, scope)
            self.block(stmt.body, scope, in_function)
            return
        if isinstance(stmt, ast.Try):
            self.block(stmt.body, scope, in_function)
            for handler in stmt.handlers:
                if handler.type is not None:
                    self.expr(handler.type, scope)
                self.block(handler.body, scope, in_function)
            self.block(stmt.orelse, scope, in_function)
            self.block(stmt.finalbody, scope, in_function)
            return
        if isinstance(stmt, ast.Assert):
            return  # an assert states an invariant; it changes no behaviour when it holds
        if isinstance(stmt, ast.Continue):
            self.emit(scope, "statement", *self.src.span(stmt), "break")
            return
        if isinstance(stmt, ast.Break):
            self.emit(scope, "statement", *self.src.span(stmt), "continue")
            return
        for child in ast.iter_child_nodes(stmt):
            if isinstance(child, ast.expr):
                self.expr(child, scope)

    def condition(self, test: ast.expr, scope: str) -> None:
        if not isinstance(test, (ast.Compare, ast.BoolOp)) and not (
            isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)
        ):
            self.emit(scope, "condition", *self.src.span(test), f"not ({self.src.node_text(test)})")
        self.expr(test, scope)

    def _silence_message(self, call: ast.Call) -> None:
        if call.args and isinstance(call.args[0], ast.Constant):
            self.silent.add(id(call.args[0]))
        if call.args and isinstance(call.args[0], (ast.JoinedStr, ast.BinOp)):
            for sub in ast.walk(call.args[0]):
                self.silent.add(id(sub))

    # -- expressions ------------------------------------------------------------------------

    def expr(self, node: ast.expr, scope: str) -> None:
        if id(node) in self.skip:
            return
        if isinstance(node, ast.JoinedStr) or _is_log_call(node):
            return
        if isinstance(node, ast.Lambda):
            self.expr(node.body, scope)
            return
        if isinstance(node, ast.Call):
            if _call_name(node).endswith(("Error", "Exception")):
                self._silence_message(node)
            self.expr(node.func, scope) if not isinstance(node.func, (ast.Name, ast.Attribute)) else None
            if isinstance(node.func, ast.Attribute):
                self.expr(node.func.value, scope)
            for arg in node.args:
                self.expr(arg, scope)
            for kw in node.keywords:
                self.expr(kw.value, scope)
            return
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                old, new = _CMP_TOKENS[type(op)]
                self.emit_token(scope, "compare", operands[i], operands[i + 1], old, new)
            for operand in operands:
                self.expr(operand, scope)
            return
        if isinstance(node, ast.BoolOp):
            old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            for left, right in zip(node.values, node.values[1:]):
                self.emit_token(scope, "boolean", left, right, old, new)
            for value in node.values:
                self.expr(value, scope)
            return
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                start, _ = self.src.span(node)
                operand_start = self.src.offset(node.operand.lineno, node.operand.col_offset)
                gap = self.src.text(start, operand_start)
                match = re.match(r"not\s*", gap)
                if match:
                    self.emit(scope, "not_removed", start, start + match.end(), "")
            self.expr(node.operand, scope)
            return
        if isinstance(node, ast.BinOp):
            tokens = _BIN_TOKENS.get(type(node.op))
            if tokens and not (isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)):
                self.emit_token(scope, "arith", node.left, node.right, *tokens)
            self.expr(node.left, scope)
            self.expr(node.right, scope)
            return
        if isinstance(node, ast.IfExp):
            self.condition(node.test, scope)
            self.expr(node.body, scope)
            self.expr(node.orelse, scope)
            return
        if isinstance(node, ast.Constant):
            self.constant(node, scope)
            return
        if isinstance(node, (ast.Set, ast.List)) or (isinstance(node, ast.Tuple) and isinstance(node.ctx, ast.Load)):
            self.collection(node, scope)
            for elt in node.elts:
                self.expr(elt, scope)
            return
        if isinstance(node, ast.Dict):
            self.dictionary(node, scope)
            for key, value in zip(node.keys, node.values):
                if key is not None:
                    self.expr(key, scope)
                self.expr(value, self._entry_scope(scope, key))
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child, scope)
            elif isinstance(child, ast.comprehension):
                self.expr(child.iter, scope)
                for cond in child.ifs:
                    self.expr(cond, scope)

    def constant(self, node: ast.Constant, scope: str) -> None:
        value = node.value
        span = self.src.span(node)
        if isinstance(value, bool):
            self.emit(scope, "bool", *span, repr(not value))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            self.emit(scope, "number", *span, repr(value + 1))
        elif isinstance(value, str) and id(node) not in self.silent:
            self.emit(scope, "string", *span, repr("XX" + value + "XX"))
        elif isinstance(value, bytes):
            self.emit(scope, "string", *span, repr(b"XX" + value + b"XX"))

    # -- collections --------------------------------------------------------------------------

    def _render(self, node: ast.Set | ast.Tuple | ast.List, parts: list[str]) -> str:
        if isinstance(node, ast.List):
            return "[" + ", ".join(parts) + "]"
        if isinstance(node, ast.Set):
            return "{" + ", ".join(parts) + "}" if parts else "set()"
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"

    def collection(self, node: ast.Set | ast.Tuple | ast.List, scope: str) -> None:
        if any(isinstance(e, ast.Starred) for e in node.elts):
            return
        texts = [self.src.node_text(e) for e in node.elts]
        span = self.src.span(node)
        for i in range(len(texts)):
            self.emit(scope, "drop", *span, self._render(node, texts[:i] + texts[i + 1:]))

    def dictionary(self, node: ast.Dict, scope: str) -> None:
        entries = []
        for key, value in zip(node.keys, node.values):
            entries.append("**(" + self.src.node_text(value) + ")" if key is None else self.src.node_text(key) + ": " + self.src.node_text(value))
        span = self.src.span(node)
        for i in range(len(entries)):
            self.emit(scope, "drop", *span, "{" + ", ".join(entries[:i] + entries[i + 1:]) + "}")
        self.table(node, scope)

    def table(self, node: ast.Dict, scope: str) -> None:
        """A move table (target -> the states it may be entered from): add each state it names elsewhere."""
        inner: list[ast.Set | ast.Tuple] = []
        for value in node.values:
            coll = value.args[0] if (isinstance(value, ast.Call) and _call_name(value) in ("frozenset", "set", "tuple")
                                     and len(value.args) == 1) else value
            if not isinstance(coll, (ast.Set, ast.Tuple)) or not all(isinstance(e, ast.Name) for e in coll.elts):
                return
            inner.append(coll)
        if not inner or not all(isinstance(k, ast.Name) for k in node.keys):
            return
        pool = sorted({k.id for k in node.keys} | {e.id for c in inner for e in c.elts})
        for key, coll in zip(node.keys, inner):
            present = [e.id for e in coll.elts]
            span = self.src.span(coll)
            for name in pool:
                if name not in present:
                    self.emit(self._entry_scope(scope, key), "add", *span, self._render(coll, present + [name]))

    def _entry_scope(self, scope: str, key: ast.expr | None) -> str:
        """``TABLE[KEY]`` for a dict entry whose key is a name, an attribute or a short constant."""
        if isinstance(key, (ast.Name, ast.Attribute)) or (
                isinstance(key, ast.Constant) and isinstance(key.value, str) and len(key.value) <= 40):
            return f"{scope}[{self.src.node_text(key)}]"
        return scope


def mutants_of(path: str, data: bytes, only: frozenset[str] | None = None) -> list[Mutant]:
    """Every mutant of one file. ``only``: the function qualnames and
    module-level names to mutate (a class name takes its methods); all when ``None``."""
    tree = ast.parse(data)
    walker = _Walker(path, data, only)
    walker.module(tree)
    seen: dict[tuple[str, str, str, str], int] = {}
    numbered = []
    for m in sorted(walker.found, key=lambda m: (m.start, m.end, m.operator, m.replacement)):
        k = (m.scope, m.operator, m.original, m.replacement)
        n = seen.get(k, 0)
        seen[k] = n + 1
        numbered.append(Mutant(m.path, m.scope, m.line, m.operator, m.original, m.replacement, m.start, m.end, n,
                               m.runtime))
    return numbered


def iter_valid(mutants: list[Mutant], data: bytes) -> Iterator[Mutant]:
    """Mutants whose text still parses (an edit of the text could in theory break it)."""
    for m in mutants:
        try:
            ast.parse(m.apply(data))
        except SyntaxError:
            continue
        yield m

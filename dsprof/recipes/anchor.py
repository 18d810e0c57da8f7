"""Where `--apply` writes a model change: after the last statement that prepares the model before
its first call.

The child records, at the model's first call, the expressions the script's frames reach it by
(`dsprof.runner.model_facts`: `model`, `extractor.model`, with each frame's current line). For
one such handle (variable V at line L), the anchor is found in the script's syntax tree:

1. the statement running at L, and its scope (the innermost function or class, else the module);
2. every simple statement of that scope that names V and ends before L (`model = Net()`,
   `model.load_state_dict(torch.load(CKPT))`, `model.eval()`, `runner = Runner(model)`);
3. each lifted to the block it shares with the call (a statement inside `if args.ckpt:` is
   anchored after that `if`), dropped when that block is not the call's own (another branch)
   or when it lies inside a loop around the call without rebuilding V there (the change would
   run at every iteration);
4. the last of them is the anchor: the change runs once, on the model the script prepared,
   before the call that was measured (issue 17: int8 had been inserted between `model = Net()`
   and the `load_state_dict` that followed it, and the patched script crashed).

No handle with an anchor: the caller falls back to the call site's plain `name(...)`, then to
the one variable built from the model's class, then prints the change for the user.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

SCOPES = (cst.FunctionDef, cst.ClassDef)
LOOPS = (cst.For, cst.While)


@dataclass
class Statement:
    """A simple statement line with where it sits: its ancestors, each with the block that
    holds it (outermost first; the statement itself last)."""

    node: cst.CSTNode
    start: int
    end: int
    chain: list[tuple[cst.CSTNode, cst.CSTNode]]  # (statement, block holding it)
    reads: set[str] = field(default_factory=set)
    assigns: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)  # names called as `name(...)`
    value_code: str = ""  # source of an assignment's value (the construction fallback)

    @property
    def scope(self) -> cst.CSTNode | None:
        """The innermost function or class around the statement (None: the module)."""
        return next((s for s, _ in reversed(self.chain[:-1]) if isinstance(s, SCOPES)), None)


class Survey(cst.CSTVisitor):
    """Every simple statement line of a module, with its chain, names read and assigned."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self.compounds: list[tuple[cst.CSTNode, int, int]] = []  # (node, start, end)
        self.imports: set[str] = set()
        self._chain: list[tuple[cst.CSTNode, cst.CSTNode]] = []
        self._blocks: list[cst.CSTNode] = []
        self._current: Statement | None = None

    def _pos(self, node: cst.CSTNode) -> tuple[int, int]:
        pos = self.get_metadata(PositionProvider, node)
        return pos.start.line, pos.end.line

    # blocks: the body a statement belongs to (Module, IndentedBlock, SimpleStatementSuite)
    def visit_Module(self, node: cst.Module) -> None:
        self._blocks.append(node)

    def visit_IndentedBlock(self, node: cst.IndentedBlock) -> None:
        self._blocks.append(node)

    def leave_IndentedBlock(self, original_node: cst.IndentedBlock) -> None:
        self._blocks.pop()

    def on_visit(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.BaseCompoundStatement):
            self._chain.append((node, self._blocks[-1]))
            self.compounds.append((node, *self._pos(node)))
        return super().on_visit(node)

    def on_leave(self, original_node: cst.CSTNode) -> None:
        if isinstance(original_node, cst.BaseCompoundStatement):
            self._chain.pop()
        super().on_leave(original_node)

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        start, end = self._pos(node)
        st = Statement(node, start, end, [*self._chain, (node, self._blocks[-1])])
        self._current = st
        self.statements.append(st)
        for small in node.body:
            targets: list[cst.BaseExpression] = []
            if isinstance(small, cst.Assign):
                targets = [t.target for t in small.targets]
            elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
                targets = [small.target]
            elif isinstance(small, (cst.Import, cst.ImportFrom)) and not st.scope:
                self.imports.add(cst.Module([]).code_for_node(small))
            for t in targets:
                names = [t] if isinstance(t, cst.Name) else _elements(t)
                st.assigns.update(n.value for n in names)
            value = getattr(small, "value", None)
            if targets and value is not None:
                st.value_code = cst.Module([]).code_for_node(value)

    def leave_SimpleStatementLine(self, original_node: cst.SimpleStatementLine) -> None:
        self._current = None

    def visit_Name(self, node: cst.Name) -> None:
        if self._current is not None:
            self._current.reads.add(node.value)

    def visit_Call(self, node: cst.Call) -> None:
        if self._current is not None and isinstance(node.func, cst.Name):
            self._current.calls.append(node.func.value)

    def at_line(self, line: int) -> tuple[Statement | None, list[tuple[cst.CSTNode, cst.CSTNode]]]:
        """The simple statement running at `line` and its chain; for a compound statement's
        header line (`for x in model(...):`), None and that statement's chain."""
        for st in self.statements:
            if st.start <= line <= st.end:
                return st, st.chain
        best: list[tuple[cst.CSTNode, cst.CSTNode]] = []
        for st in self.statements:  # chains of statements inside the compound on that line
            for i, (node, _) in enumerate(st.chain[:-1]):
                if self._header_line(node) == line and len(st.chain[: i + 1]) > len(best):
                    best = st.chain[: i + 1]
        return None, best

    def _header_line(self, node: cst.CSTNode) -> int:
        return next((s for n, s, _ in self.compounds if n is node), -1)


def survey(source: str) -> tuple[cst.Module, Survey]:
    """The parsed module (with positions) and its survey."""
    wrapper = MetadataWrapper(cst.parse_module(source))
    s = Survey()
    wrapper.visit(s)
    return wrapper.module, s


def _elements(target: cst.BaseExpression) -> list[cst.Name]:
    return [e.value for e in getattr(target, "elements", []) if isinstance(e.value, cst.Name)]


@dataclass(frozen=True)
class Anchor:
    """The statement a change goes after (in its own block), and its line."""

    node: cst.CSTNode
    line: int


def anchor_for(s: Survey, var: str, line: int) -> tuple[Anchor | None, str]:
    """The anchor for a model reached as `var` at `line`, or None and why (module docstring)."""
    call, chain = s.at_line(line)
    if not chain:
        return None, f"line {line} is not a statement of this script"
    scope = call.scope if call else _scope_of(chain)
    call_start = call.start if call else line
    in_chain = {id(n) for n, _ in chain}
    candidates: list[tuple[Statement, cst.CSTNode, bool]] = []
    for st in s.statements:
        if st is call or st.end >= call_start or var not in st.reads or st.scope is not scope:
            continue
        lifted = _lift(st, chain, in_chain)
        if lifted is None:
            continue
        node, in_loop = lifted
        candidates.append((st, node, in_loop))
    if any(c[2] and var in c[0].assigns for c in candidates):
        usable = candidates  # the model is rebuilt inside the loop: prepare each one
    else:
        usable = [c for c in candidates if not c[2]]
    if not usable:
        return None, f"`{var}` is not assigned or prepared before line {line} in the same scope"
    st, node, _ = max(usable, key=lambda c: c[0].end)
    return Anchor(node, st.start), ""


def _scope_of(chain: list[tuple[cst.CSTNode, cst.CSTNode]]) -> cst.CSTNode | None:
    return next((n for n, _ in reversed(chain) if isinstance(n, SCOPES)), None)


def _lift(
    st: Statement, call_chain: list[tuple[cst.CSTNode, cst.CSTNode]], in_call_chain: set[int]
) -> tuple[cst.CSTNode, bool] | None:
    """`st` lifted to the block it shares with the call: (statement to anchor after, whether that
    block lies inside a loop around the call); None when it shares none (another branch) or
    encloses the call."""
    k = 0
    while k < len(st.chain) and k < len(call_chain) and st.chain[k][0] is call_chain[k][0]:
        k += 1
    if k == len(st.chain) or k >= len(call_chain):
        return None  # st encloses the call (or is it)
    node, block = st.chain[k]
    if block is not call_chain[k][1] or id(node) in in_call_chain:
        return None  # the same compound statement, but another of its blocks (if / else)
    in_loop = any(isinstance(n, LOOPS) for n, _ in st.chain[:k])
    return node, in_loop

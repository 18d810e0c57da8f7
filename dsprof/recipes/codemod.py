"""`dsprof fix --apply`: write recipes' CodeChanges into a script with libcst.

Placement rules (issue 4):
- model-level statements go right after the statement that last assigns the model variable
  before the call site the runner recorded, in the same scope as the call;
- flags go after the top-of-file import block; environment settings that must precede torch go
  before the first import (after the docstring and `from __future__` imports);
- DataLoader keyword arguments are set on the `DataLoader(...)` calls themselves.
When a place cannot be found safely (the call is not a plain `name(...)`, the model is assigned
in another scope, the call site is in another file), the change is returned as manual text.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from dsprof.core.fix import AppliedChange
from dsprof.recipes.base import CodeChange


@dataclass
class CodemodResult:
    """The new source, what was written where, and what the user must do by hand."""

    source: str
    changes: list[AppliedChange] = field(default_factory=list)
    model_var: str | None = None

    @property
    def manual(self) -> list[AppliedChange]:
        return [c for c in self.changes if c.manual]

    def diff(self, original: str, path: str) -> str:
        """Unified diff of the change, with a/ b/ file names like git's."""
        return "".join(
            difflib.unified_diff(
                original.splitlines(keepends=True),
                self.source.splitlines(keepends=True),
                fromfile=f"a/{path}",
                tofile=f"b/{path}",
            )
        )


class _Survey(cst.CSTVisitor):
    """Finds the called names on the call line, model assignments per scope, and imports."""

    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, call_line: int | None) -> None:
        self.call_line = call_line
        self.called: list[tuple[str, tuple[int, ...]]] = []  # (name, scope) of calls on that line
        self.assigns: dict[str, list[tuple[int, tuple[int, ...], cst.CSTNode]]] = {}
        self.imports: set[str] = set()
        # (variable, line, scope, source of the assigned value) of every assignment
        self.constructs: list[tuple[str, int, tuple[int, ...], str]] = []
        self._scope: list[int] = []

    def _line(self, node: cst.CSTNode) -> int:
        return self.get_metadata(PositionProvider, node).start.line

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._scope.append(self._line(node))

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._scope.pop()

    def visit_Call(self, node: cst.Call) -> None:
        if self.call_line is not None and self._line(node) == self.call_line:
            name = node.func.value if isinstance(node.func, cst.Name) else None
            self.called.append((name or "", tuple(self._scope)))

    def visit_SimpleStatementLine(self, node: cst.SimpleStatementLine) -> None:
        for small in node.body:
            targets: list[cst.BaseExpression] = []
            if isinstance(small, cst.Assign):
                targets = [t.target for t in small.targets]
            elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
                targets = [small.target]
            elif isinstance(small, (cst.Import, cst.ImportFrom)) and not self._scope:
                self.imports.add(cst.Module([]).code_for_node(small))
            for t in targets:
                names = (
                    [t]
                    if isinstance(t, cst.Name)
                    else [
                        e.value for e in getattr(t, "elements", []) if isinstance(e.value, cst.Name)
                    ]
                )
                for n in names:
                    self.assigns.setdefault(n.value, []).append(
                        (self._line(node), tuple(self._scope), node)
                    )
                    value = getattr(small, "value", None)
                    if value is not None:
                        self.constructs.append(
                            (
                                n.value,
                                self._line(node),
                                tuple(self._scope),
                                cst.Module([]).code_for_node(value),
                            )
                        )


def _is_import(stmt: cst.CSTNode) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and any(
        isinstance(s, (cst.Import, cst.ImportFrom)) for s in stmt.body
    )


def _is_docstring_or_future(stmt: cst.CSTNode) -> bool:
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    s = stmt.body[0]
    if isinstance(s, cst.Expr) and isinstance(s.value, (cst.SimpleString, cst.ConcatenatedString)):
        return True
    return (
        isinstance(s, cst.ImportFrom)
        and isinstance(s.module, cst.Name)
        and s.module.value == "__future__"
    )


class _Insert(cst.CSTTransformer):
    """Inserts statements after given original statements; sets DataLoader keywords."""

    def __init__(
        self, after: dict[cst.CSTNode, list[cst.BaseStatement]], loader_kwargs: dict[str, str]
    ) -> None:
        self.after = after
        self.loader_kwargs = loader_kwargs
        self.loaders_changed = 0

    def _splice(self, original: Sequence[cst.CSTNode], updated: Sequence[cst.CSTNode]) -> list[Any]:
        body: list[cst.CSTNode] = []
        for o, u in zip(original, updated, strict=True):
            body.append(u)
            body.extend(self.after.get(o, []))
        return body

    def leave_IndentedBlock(
        self, original_node: cst.IndentedBlock, updated_node: cst.IndentedBlock
    ) -> cst.IndentedBlock:
        return updated_node.with_changes(body=self._splice(original_node.body, updated_node.body))

    def leave_Module(self, original_node: cst.Module, updated_node: cst.Module) -> cst.Module:
        return updated_node.with_changes(body=self._splice(original_node.body, updated_node.body))

    def leave_Call(self, original_node: cst.Call, updated_node: cst.Call) -> cst.Call:
        func = updated_node.func
        name = (
            func.value
            if isinstance(func, cst.Name)
            else func.attr.value
            if isinstance(func, cst.Attribute)
            else ""
        )
        if name != "DataLoader" or not self.loader_kwargs:
            return updated_node
        if len([a for a in updated_node.args if a.keyword is None]) > 5:
            return updated_node  # num_workers passed positionally: leave the call alone
        current = {a.keyword.value: a for a in updated_node.args if a.keyword is not None}
        workers = current.get("num_workers")
        if (
            "num_workers" in self.loader_kwargs
            and workers is not None
            and not (isinstance(workers.value, cst.Integer) and workers.value.value == "0")
        ):
            return updated_node  # the script chose its workers: not ours to override
        args = [
            a
            for a in updated_node.args
            if a.keyword is None or a.keyword.value not in self.loader_kwargs
        ]
        if args:
            args[-1] = args[-1].with_changes(
                comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            )
        new = [
            cst.Arg(
                keyword=cst.Name(k),
                value=cst.parse_expression(v),
                equal=cst.AssignEqual(
                    whitespace_before=cst.SimpleWhitespace(""),
                    whitespace_after=cst.SimpleWhitespace(""),
                ),
            )
            for k, v in self.loader_kwargs.items()
        ]
        for i in range(len(new) - 1):
            new[i] = new[i].with_changes(
                comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
            )
        self.loaders_changed += 1
        return updated_node.with_changes(args=[*args, *new])


def apply_changes(
    source: str,
    changes: list[tuple[str, CodeChange]],
    *,
    path: str,
    call_line: int | None,
    call_file_matches: bool = True,
    model_class: str | None = None,
) -> CodemodResult:
    """Rewrite `source` with the recipes' changes; see the module docstring for placement."""
    module = cst.parse_module(source)
    wrapper = MetadataWrapper(module)
    survey = _Survey(call_line if call_file_matches else None)
    wrapper.visit(survey)
    tree = wrapper.module
    result = CodemodResult(source=source)

    model_var, anchor, why_not = _find_anchor(survey, call_line, call_file_matches)
    if anchor is None and model_class:
        model_var, anchor, why_not = _construction_anchor(survey, model_class, why_not, model_var)
    result.model_var = model_var
    after: dict[cst.CSTNode, list[cst.BaseStatement]] = {}
    imports: list[str] = []
    before_imports: list[str] = []
    top: list[str] = []
    loader_kwargs: dict[str, str] = {}
    for recipe, change in changes:
        if change.model:
            code = [s.replace("{model}", model_var or "model") for s in change.model]
            if anchor is None:
                result.changes.append(
                    AppliedChange(
                        recipe=recipe,
                        file=path,
                        placement="manual",
                        code="\n".join(code),
                        manual=True,
                        reason=why_not,
                    )
                )
                continue
            after.setdefault(anchor[1], []).extend(cst.parse_statement(s + "\n") for s in code)
            result.changes.append(
                AppliedChange(
                    recipe=recipe,
                    file=path,
                    placement="after-model",
                    line=anchor[0],
                    code="\n".join(code),
                )
            )
        if change.top or change.before_imports:
            top.extend(s for s in change.top if s not in top)
            before_imports.extend(s for s in change.before_imports if s not in before_imports)
            result.changes.append(
                AppliedChange(
                    recipe=recipe,
                    file=path,
                    placement="top",
                    code="\n".join([*change.before_imports, *change.top]),
                )
            )
        if change.model or change.top:
            imports.extend(
                i for i in change.imports if i not in imports and i not in survey.imports
            )
        if change.dataloader_kwargs:
            loader_kwargs.update(change.dataloader_kwargs)
            result.changes.append(
                AppliedChange(
                    recipe=recipe,
                    file=path,
                    placement="top",
                    code=", ".join(f"{k}={v}" for k, v in change.dataloader_kwargs.items()),
                    reason="DataLoader(...) keyword arguments",
                )
            )
        if change.manual:
            result.changes.append(
                AppliedChange(
                    recipe=recipe,
                    file=path,
                    placement="manual",
                    code=change.manual,
                    manual=True,
                    reason="needs a change by hand",
                )
            )

    transformer = _Insert(after, loader_kwargs)
    tree = tree.visit(transformer)
    if loader_kwargs and transformer.loaders_changed == 0:
        for c in result.changes:
            if c.reason == "DataLoader(...) keyword arguments":
                c.placement, c.manual = "manual", True
                c.reason = "no DataLoader(...) call with num_workers=0 found in the script"
    tree = _add_top(tree, before_imports, imports, top)
    result.source = tree.code
    return result


def _find_anchor(
    survey: _Survey, call_line: int | None, call_file_matches: bool
) -> tuple[str | None, tuple[int, cst.CSTNode] | None, str]:
    if call_line is None or not call_file_matches:
        return None, None, "the model's call site is not in this script (or was not recorded)"
    named = [(n, s) for n, s in survey.called if n]
    # prefer a name the script assigns (the model) over builtins called on the same line
    named.sort(key=lambda ns: ns[0] not in survey.assigns)
    if not named:
        return None, None, f"line {call_line} does not call the model through a plain variable"
    var, scope = named[0]
    before = [a for a in survey.assigns.get(var, []) if a[1] == scope and a[0] < call_line]
    if not before:
        return var, None, f"`{var}` is not assigned before line {call_line} in the same scope"
    line, _, node = max(before, key=lambda a: a[0])
    return var, (line, node), ""


def _construction_anchor(
    survey: _Survey, model_class: str, why_not: str, var: str | None
) -> tuple[str | None, tuple[int, cst.CSTNode] | None, str]:
    """Fallback: the one variable the script builds the recorded model class into.

    When the call site gives no anchor (the model is a parameter there, or is called from
    another file), an assignment whose value names the root module's class (`net =
    BertModel(config)`) identifies the object; if exactly one variable in one scope is built so,
    the change goes after that variable's last assignment in that scope. Otherwise: manual.
    """
    pattern = re.compile(rf"\b{re.escape(model_class)}\b")
    makers = {(v, scope) for v, _, scope, code in survey.constructs if pattern.search(code)}
    if len(makers) != 1:
        found = "no" if not makers else f"{len(makers)}"
        return (
            var,
            None,
            f"{why_not}; {found} assignments build a {model_class} to anchor on instead",
        )
    name, scope = makers.pop()
    line, _, node = max((a for a in survey.assigns[name] if a[1] == scope), key=lambda a: a[0])
    return name, (line, node), ""


def _add_top(
    tree: cst.Module, before_imports: list[str], imports: list[str], top: list[str]
) -> cst.Module:
    body = list(tree.body)
    head = 0
    while head < len(body) and _is_docstring_or_future(body[head]):
        head += 1
    end = head
    while end < len(body) and _is_import(body[end]):
        end += 1
    new_imports = [cst.parse_statement(s + "\n") for s in imports]
    new_top = [cst.parse_statement(s + "\n") for s in top]
    new_before = [cst.parse_statement(s + "\n") for s in before_imports]
    body = body[:head] + new_before + body[head:end] + new_imports + new_top + body[end:]
    return tree.with_changes(body=body)


def write_backup_and_script(script: Path, new_source: str) -> Path:
    """Keep script.py.orig (never overwriting an older backup) and write the new source atomically."""
    import shutil

    from dsprof.store.documents import write_text_atomic

    backup = script.with_name(script.name + ".orig")
    if not backup.exists():
        shutil.copy2(script, backup)
    mode = script.stat().st_mode
    write_text_atomic(script, new_source)
    script.chmod(mode)  # the temporary file was created 0600
    return backup

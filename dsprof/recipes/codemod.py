"""`dsprof fix --apply`: write recipes' CodeChanges into a script with libcst.

Placement rules (issues 4 and 17):
- model-level statements go after the last statement that prepares the model before its first
  call (assigned, weights loaded, `.eval()`, `.to()`, handed to a wrapper), on the expression the
  script reaches it by (`model`, `pipe.model`, `predictor.net`): `dsprof.recipes.anchor`;
- flags go after the top-of-file import block; environment settings that must precede torch go
  before the first import (after the docstring and `from __future__` imports);
- DataLoader keyword arguments are set on the `DataLoader(...)` calls themselves.
When a place cannot be found safely (no frame of this script reaches the model by a name
prepared before the call, the call site is in another file), the change is returned as manual
text for the user to make.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import libcst as cst

from dsprof.core.fix import AppliedChange
from dsprof.recipes.anchor import Anchor, Survey, anchor_for, survey
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


@dataclass(frozen=True)
class Handle:
    """The model reached as `expr` through the variable `var` at `line` of the script."""

    line: int
    var: str
    expr: str


def apply_changes(
    source: str,
    changes: list[tuple[str, CodeChange]],
    *,
    path: str,
    call_line: int | None,
    call_file_matches: bool = True,
    model_class: str | None = None,
    handles: Sequence[Handle] = (),
) -> CodemodResult:
    """Rewrite `source` with the recipes' changes; see the module docstring for placement.

    handles: where the script's frames reach the model (innermost first), from child.json; the
    first with an anchor decides. Without one: the call site's `name(...)`, then the variable
    built from `model_class`.
    """
    tree, found = survey(source)
    result = CodemodResult(source=source)
    model_expr, anchor, why_not = _place(found, handles, call_line, call_file_matches, model_class)
    result.model_var = model_expr
    after: dict[cst.CSTNode, list[cst.BaseStatement]] = {}
    imports: list[str] = []
    before_imports: list[str] = []
    top: list[str] = []
    loader_kwargs: dict[str, str] = {}
    for recipe, change in changes:
        applied = partial(AppliedChange, recipe=recipe, file=path)  # what this recipe changed
        if change.model:
            code = [st.replace("{model}", model_expr or "model") for st in change.model]
            if anchor is None:
                result.changes.append(
                    applied(
                        placement="manual",
                        code="\n".join(code),
                        manual=True,
                        reason=why_not,
                    )
                )
                continue
            after.setdefault(anchor.node, []).extend(cst.parse_statement(st + "\n") for st in code)
            result.changes.append(
                applied(
                    placement="after-model",
                    line=anchor.line,
                    code="\n".join(code),
                )
            )
        if change.top or change.before_imports:
            top.extend(st for st in change.top if st not in top)
            before_imports.extend(st for st in change.before_imports if st not in before_imports)
            result.changes.append(
                applied(
                    placement="top",
                    code="\n".join([*change.before_imports, *change.top]),
                )
            )
        if (change.model and anchor is not None) or change.top:
            imports.extend(i for i in change.imports if i not in imports and i not in found.imports)
        if change.dataloader_kwargs:
            loader_kwargs.update(change.dataloader_kwargs)
            result.changes.append(
                applied(
                    placement="top",
                    code=", ".join(f"{k}={v}" for k, v in change.dataloader_kwargs.items()),
                    reason="DataLoader(...) keyword arguments",
                )
            )
        if change.manual:
            result.changes.append(
                applied(
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


def _place(
    found: Survey,
    handles: Sequence[Handle],
    call_line: int | None,
    call_file_matches: bool,
    model_class: str | None,
) -> tuple[str | None, Anchor | None, str]:
    """(expression for `{model}`, anchor, why there is none) for the model changes."""
    reasons = []
    for h in handles:
        anchor, why = anchor_for(found, h.var, h.line)
        if anchor is not None:
            return h.expr, anchor, ""
        reasons.append(f"{h.expr} at line {h.line}: {why}")
    var, anchor, why_not = _call_site_anchor(found, call_line, call_file_matches)
    if anchor is None and model_class:
        var, anchor, why_not = _construction_anchor(found, model_class, why_not, var)
    if anchor is None and reasons:
        why_not = "; ".join([*reasons, why_not])
    return var, anchor, why_not


def _call_site_anchor(
    found: Survey, call_line: int | None, call_file_matches: bool
) -> tuple[str | None, Anchor | None, str]:
    """The plain `name(...)` called at the recorded call site, prepared before it."""
    if call_line is None or not call_file_matches:
        return None, None, "the model's call site is not in this script (or was not recorded)"
    call, _ = found.at_line(call_line)
    names = [n for n in (call.calls if call else []) if n]
    assigned = {n for st in found.statements for n in st.assigns}
    # prefer a name the script assigns (the model) over builtins called on the same line
    names.sort(key=lambda n: n not in assigned)
    if not names:
        return None, None, f"line {call_line} does not call the model through a plain variable"
    anchor, why = anchor_for(found, names[0], call_line)
    return names[0], anchor, why


def _construction_anchor(
    found: Survey, model_class: str, why_not: str, var: str | None
) -> tuple[str | None, Anchor | None, str]:
    """Fallback: the one variable the script builds the recorded model class into.

    When nothing else gives an anchor (the model is a parameter where it is called, or is
    called from another file), an assignment whose value names the root module's class (`net =
    BertModel(config)`) identifies the object; if exactly one variable in one scope is built so,
    the change goes after that variable's last assignment in that scope. Else: manual.
    """
    pattern = re.compile(rf"\b{re.escape(model_class)}\b")
    makers = {
        (v, id(st.scope))
        for st in found.statements
        if st.value_code and pattern.search(st.value_code)
        for v in st.assigns
    }
    if len(makers) != 1:
        count = "no" if not makers else f"{len(makers)}"
        return (
            var,
            None,
            f"{why_not}; {count} assignments build a {model_class} to anchor on instead",
        )
    name, scope = makers.pop()
    last = max(
        (st for st in found.statements if id(st.scope) == scope and name in st.assigns),
        key=lambda st: st.end,
    )
    return name, Anchor(last.node, last.start), ""


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

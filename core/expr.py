"""Synthetic target expressions, parsed by a whitelist (never ``eval``).

Grammar: variables ``x0 .. x{d-1}``, numbers, ``+ - * / **``, unary minus/plus,
parentheses, and calls of ``sin cos tanh exp log abs sign relu sqrt`` with one
argument. An exponent must be a number of magnitude at most ``MAX_EXPONENT``.
Anything else (attributes, other names or calls, subscripts, lambdas,
comprehensions, keywords, strings) is refused with :class:`ExprError`.
The parsed tree compiles to a function of a torch tensor ``x`` of shape (n, d),
so the ground-truth AGOP can be taken by autograd.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Callable

import torch

from core.config import ConfigError

FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tanh": torch.tanh,
    "exp": torch.exp,
    "log": torch.log,
    "abs": torch.abs,
    "sign": torch.sign,
    "relu": torch.relu,
    "sqrt": torch.sqrt,
}
MAX_EXPONENT = 16
MAX_NUMBER = 1e100
MAX_NODES = 400
ALLOWED = ("variables x0..x{d-1}, numbers, + - * / **, parentheses and "
           + " ".join(FUNCTIONS))


class ExprError(ConfigError):
    """A target expression outside the whitelist."""

    def __init__(self, problem: str):
        super().__init__("data.target", f"{problem}; allowed: {ALLOWED}")


@dataclass(frozen=True)
class Target:
    """A parsed target: ``fn(x)`` maps (n, d) to (n,); ``variables`` are the indices used."""

    text: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    variables: tuple[int, ...]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


_BINOPS = {
    ast.Add: torch.add,
    ast.Sub: torch.sub,
    ast.Mult: torch.mul,
    ast.Div: torch.div,
}


def _compile(node: ast.AST, d: int, used: set[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(node, ast.Expression):
        return _compile(node.body, d, used)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value = _number(node.value)
        return lambda x: torch.full((x.shape[0],), value, dtype=x.dtype, device=x.device)
    if isinstance(node, ast.Name):
        return _variable(node.id, d, used)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _compile(node.operand, d, used)
        return (lambda x: -inner(x)) if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        base = _compile(node.left, d, used)
        exponent = _exponent(node.right)
        return lambda x: torch.pow(base(x), exponent)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        op = _BINOPS[type(node.op)]
        left, right = _compile(node.left, d, used), _compile(node.right, d, used)
        return lambda x: op(left(x), right(x))
    if isinstance(node, ast.Call):
        return _call(node, d, used)
    raise ExprError(f"{_describe(node)} is not allowed")


def _variable(name: str, d: int, used: set[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    if name.startswith("x") and name[1:].isdigit() and (name[1:] == "0" or not name[1:].startswith("0")):
        index = int(name[1:])
        if index >= d:
            raise ExprError(f"variable {name} needs data.d > {index} (data.d is {d})")
        used.add(index)
        return lambda x: x[:, index]
    raise ExprError(f"name {name!r} is not allowed")


def _exponent(node: ast.AST) -> float:
    sign = 1.0
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        sign = -sign if isinstance(node.op, ast.USub) else sign
        node = node.operand
    if not (isinstance(node, ast.Constant) and type(node.value) in (int, float)):
        raise ExprError("an exponent must be a number")
    value = sign * _number(node.value)
    if abs(value) > MAX_EXPONENT:
        raise ExprError(f"exponent {value:g} is too large (at most {MAX_EXPONENT} in magnitude)")
    return value


def _number(value: int | float) -> float:
    """A literal as a float; one too large for a float (``1e999``, 400 digits) is refused."""
    try:
        out = float(value)
    except OverflowError:
        out = float("inf")
    if not math.isfinite(out) or abs(out) > MAX_NUMBER:
        text = str(value) if isinstance(value, float) else f"a {len(str(abs(value)))}-digit integer"
        raise ExprError(f"the number {text[:30]} is too large (at most {MAX_NUMBER:g} in magnitude)")
    return out


def _call(node: ast.Call, d: int, used: set[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
        raise ExprError(f"calling {_describe(node.func)} is not allowed")
    if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
        raise ExprError(f"{node.func.id}() takes exactly one argument")
    fn = FUNCTIONS[node.func.id]
    inner = _compile(node.args[0], d, used)
    return lambda x: fn(inner(x))


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"name {node.id!r}"
    if isinstance(node, ast.Attribute):
        return "attribute access"
    if isinstance(node, ast.Constant):
        return f"constant {node.value!r}"[:60]
    return {
        "Lambda": "lambda", "ListComp": "a comprehension", "GeneratorExp": "a comprehension",
        "SetComp": "a comprehension", "DictComp": "a comprehension", "Subscript": "subscript",
        "Compare": "comparison", "BoolOp": "boolean operator", "IfExp": "conditional",
        "NamedExpr": "assignment",
    }.get(type(node).__name__, type(node).__name__)


def parse_target(text: str, d: int) -> Target:
    """Parses a target expression for inputs of dimension ``d``; raises ExprError."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("the expression is empty")
    if len(text) > 500:
        raise ExprError("the expression is longer than 500 characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise ExprError(f"syntax error at column {err.offset or 0}") from None
    count = sum(1 for _ in ast.walk(tree))
    if count > MAX_NODES:
        raise ExprError(f"the expression has {count} parts (at most {MAX_NODES})")
    used: set[int] = set()
    fn = _compile(tree, d, used)
    return Target(text=text.strip(), fn=fn, variables=tuple(sorted(used)))

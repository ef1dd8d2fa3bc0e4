"""core.expr: the whitelist parser refuses everything outside its grammar and evaluates like numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.config import ConfigError
from core.expr import FUNCTIONS, MAX_EXPONENT, ExprError, parse_target

X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
XN = X.numpy()


def _refused(text: str, d: int = 4, match: str = "") -> ExprError:
    with pytest.raises(ExprError) as info:
        parse_target(text, d)
    err = info.value
    assert isinstance(err, ConfigError) and err.key == "data.target"
    msg = str(err)
    assert "\n" not in msg and msg.startswith("data.target: ")
    assert "allowed: variables x0..x{d-1}" in msg and "sqrt" in msg  # says what is allowed
    assert match in msg, msg
    return err


@pytest.mark.parametrize("text,match", [
    ("x0.real", "attribute access"),
    ("().__class__", "attribute access"),
    ("x0.__class__.__bases__", "attribute access"),
    ("open('x')", "calling name 'open'"),
    ("__import__('os')", "calling name '__import__'"),
    ("eval('1')", "calling name 'eval'"),
    ("exec('1')", "calling name 'exec'"),
    ("sin.__call__(x0)", "attribute access"),
    ("getattr(x0, 'real')", "calling name 'getattr'"),
    ("torch.sin(x0)", "attribute access"),
    ("np.sin(x0)", "attribute access"),
    ("import os", "syntax error"),
    ("from os import system", "syntax error"),
    ("x0; x1", "syntax error"),
    ("x0 = 1", "syntax error"),
    ("lambda: 1", "lambda"),
    ("(lambda q: q)(x0)", "calling lambda"),
    ("[x0 for x0 in (1,)]", "comprehension"),
    ("sum(x0 for x0 in (1,))", "calling name 'sum'"),
    ("{x0 for x0 in (1,)}", "comprehension"),
    ("x0[0]", "subscript"),
    ("'abc'", "constant 'abc'"),
    ("b'abc'", "constant b'abc'"),
    ("sin('x')", "constant 'x'"),
    ("x0 if x1 else x2", "conditional"),
    ("x0 < x1", "comparison"),
    ("x0 and x1", "boolean operator"),
    ("(y := 1)", "assignment"),
    ("x0 % 2", "BinOp"),
    ("x0 // 2", "BinOp"),
    ("x0 @ x1", "BinOp"),
    ("~x0", "UnaryOp"),
    ("not x0", "UnaryOp"),
    ("True", "constant True"),
    ("None", "constant None"),
    ("1j", "constant 1j"),
    ("...", "constant Ellipsis"),
    ("x0**1000", "too large"),
    ("x0**-17", "too large"),
    ("x0**1e400", "too large"),
    ("10**10**10", "exponent must be a number"),
    ("2**x0", "exponent must be a number"),
    ("x0**(1+1)", "exponent must be a number"),
    ("x4", "variable x4 needs data.d > 4"),
    ("x0 + x100", "variable x100"),
    ("x01", "name 'x01'"),
    ("x", "name 'x'"),
    ("y0", "name 'y0'"),
    ("pi", "name 'pi'"),
    ("sin(x0, x1)", "exactly one argument"),
    ("sin()", "exactly one argument"),
    ("sin(*x0)", "exactly one argument"),
    ("sin(x=x0)", "exactly one argument"),
    ("", "empty"),
    ("   ", "empty"),
    ("x0 +", "syntax error"),
    ("x" * 501, "longer than 500"),
    ("+".join(["x0"] * 150), "parts"),
    ("-" * 498 + "x0", "parts"),
], ids=lambda v: repr(v)[:40])
def test_refused(text, match):
    _refused(text, match=match)


def test_refusing_never_evaluates(tmp_path, monkeypatch):
    """Nothing is executed while parsing: a payload writing a file leaves no file."""
    target = tmp_path / "pwned"
    monkeypatch.chdir(tmp_path)
    for text in (f"open({str(target)!r}, 'w')", "__import__('os').system('touch pwned')",
                 "[open('pwned','w') for _ in (1,)]"):
        _refused(text)
    assert not target.exists() and not (tmp_path / "pwned").exists()


def test_non_string_input_refused():
    _refused(None)  # type: ignore[arg-type]
    _refused(42)  # type: ignore[arg-type]


NUMPY = {"sin": np.sin, "cos": np.cos, "tanh": np.tanh, "exp": np.exp, "log": np.log, "abs": np.abs,
         "sign": np.sign, "relu": lambda v: np.maximum(v, 0), "sqrt": np.sqrt}


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_whitelisted_function(name):
    assert set(FUNCTIONS) == set(NUMPY)
    arg = "abs(x1) + 0.5" if name in ("log", "sqrt") else "x1 - 0.3"
    inner = np.abs(XN[:, 1]) + 0.5 if name in ("log", "sqrt") else XN[:, 1] - 0.3
    t = parse_target(f"{name}({arg}) * x2", 4)
    np.testing.assert_allclose(t(X).numpy(), NUMPY[name](inner) * XN[:, 2], rtol=1e-13, atol=1e-13)
    assert t.variables == (1, 2)


@pytest.mark.parametrize("text,expected", [
    ("x0*x1", XN[:, 0] * XN[:, 1]),
    ("x0*x1 + x1*x2", XN[:, 0] * XN[:, 1] + XN[:, 1] * XN[:, 2]),
    ("-x3 / 2 + 1.5e0", -XN[:, 3] / 2 + 1.5),
    ("+x0 - -x1", XN[:, 0] + XN[:, 1]),
    ("x0**2 - x1**-2", XN[:, 0] ** 2 - XN[:, 1] ** -2.0),
    ("x0**16", XN[:, 0] ** 16),
    ("abs(x2)**0.5", np.abs(XN[:, 2]) ** 0.5),
    ("2**3 * x0", 8 * XN[:, 0]),
    ("-x0**2", -(XN[:, 0] ** 2)),
    ("tanh(x0 + x1 - x2) + sin(x3)", np.tanh(XN[:, 0] + XN[:, 1] - XN[:, 2]) + np.sin(XN[:, 3])),
    ("relu(sign(x0) * exp(-x1**2))", np.maximum(np.sign(XN[:, 0]) * np.exp(-XN[:, 1] ** 2), 0)),
    ("3", np.full(64, 3.0)),
    ("  x0  ", XN[:, 0]),
])
def test_values_match_numpy(text, expected):
    t = parse_target(text, 4)
    out = t(X)
    assert out.shape == (64,) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_variables_and_exponent_limit():
    assert parse_target("x3 * x0 + x0", 4).variables == (0, 3)
    assert parse_target("3", 4).variables == ()
    parse_target(f"x0**{MAX_EXPONENT}", 1)
    parse_target(f"x0**-{MAX_EXPONENT}", 1)
    _refused(f"x0**{MAX_EXPONENT + 1}", d=1)
    parse_target("x9", 10)
    _refused("x10", d=10)


def test_target_is_differentiable():
    x = X.clone().requires_grad_(True)
    y = parse_target("x0*x1 + sin(x2)", 4)(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    np.testing.assert_allclose(g[:, 0].numpy(), XN[:, 1])
    np.testing.assert_allclose(g[:, 2].numpy(), np.cos(XN[:, 2]))
    assert torch.all(g[:, 3] == 0)

"""Gradient checking by central finite differences (the lectures' "other approach to differentiation").

For a scalar ``J(θ)`` and each entry ``θ_i``,

    ∂J/∂θ_i ≈ (J(θ + ε·d_i) - J(θ - ε·d_i)) / (2ε)

with ``d_i`` the one-hot direction. :func:`gradcheck` compares this with a module's ``backward``
for the input and every parameter, using ``J = Σ module(x) · G`` for a fixed random ``G`` (so
every output entry matters); :func:`gradcheck_model` does the same for a whole model followed by
a loss. Both need float64 (in float32 the difference quotient drowns in rounding) and restore the
module's state afterwards (batch norm's running statistics move at every training forward).

>>> import numpy as np
>>> from symconv.nn import Linear
>>> result = gradcheck(Linear(3, 2, dtype="float64", rng=0), np.ones((4, 3)))
>>> result.ok, [t.name for t in result.tensors]
(True, ['input', 'weight', 'bias'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .nn._args import generator, positive, real
from .nn.module import Module


@dataclass(frozen=True)
class TensorCheck:
    """How the analytic and numeric gradients of one array compare."""

    name: str
    checked: int
    total: int
    max_abs_error: float
    max_rel_error: float
    failures: int
    worst_index: tuple[int, ...]
    analytic_at_worst: float
    numeric_at_worst: float


@dataclass(frozen=True)
class GradcheckResult:
    """The outcome of a check: one :class:`TensorCheck` per array, and the tolerances used.

    An entry passes when ``|analytic - numeric| <= atol + rtol · |numeric|``.
    """

    tensors: tuple[TensorCheck, ...]
    eps: float
    atol: float
    rtol: float

    @property
    def ok(self) -> bool:
        return all(t.failures == 0 for t in self.tensors)

    @property
    def max_abs_error(self) -> float:
        return max((t.max_abs_error for t in self.tensors), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((t.max_rel_error for t in self.tensors), default=0.0)

    def report(self) -> str:
        """A small table: entries checked, worst errors and where, then OK or FAILED."""
        lines = [
            f"gradient check: central differences, eps={self.eps:g}; an entry passes if "
            f"|analytic - numeric| <= {self.atol:g} + {self.rtol:g}·|numeric|",
            f"  {'array':<16}{'entries':>12}{'max abs err':>14}{'max rel err':>14}  worst at (analytic vs numeric)",
        ]
        for t in self.tensors:
            lines.append(
                f"  {t.name:<16}{f'{t.checked}/{t.total}':>12}{t.max_abs_error:>14.3e}{t.max_rel_error:>14.3e}  "
                f"{t.worst_index} ({t.analytic_at_worst:.6g} vs {t.numeric_at_worst:.6g})"
                + (f"  {t.failures} FAILED" if t.failures else "")
            )
        failed = sum(t.failures for t in self.tensors)
        lines.append("OK" if not failed else f"FAILED: {failed} entries outside the tolerance")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()


def _require_float64(name: str, array: np.ndarray) -> None:
    if array.dtype != np.float64:
        raise TypeError(f"{name} must be float64 for a finite-difference check, but got {array.dtype}")


def _entries(size: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    """Flat indices to check: all of them, or ``limit`` chosen at random."""
    if limit is None or size <= limit:
        return np.arange(size)
    return np.sort(rng.choice(size, size=limit, replace=False))


def _compare(
    name: str,
    array: np.ndarray,
    analytic: np.ndarray,
    objective: Callable[[], float],
    options: dict[str, Any],
) -> TensorCheck:
    """Central differences of ``objective`` over entries of ``array`` (changed in place, restored)."""
    eps, atol, rtol = options["eps"], options["atol"], options["rtol"]
    flat, grad = array.reshape(-1), np.asarray(analytic, np.float64).reshape(-1)
    if not np.shares_memory(flat, array):
        raise ValueError(f"{name} must be a contiguous array to be perturbed in place")
    picked = _entries(flat.size, options["max_entries"], options["rng"])
    numeric = np.empty(picked.size)
    for position, index in enumerate(picked):
        original = flat[index]
        flat[index] = original + eps
        plus = objective()
        flat[index] = original - eps
        minus = objective()
        flat[index] = original
        numeric[position] = (plus - minus) / (2 * eps)
    chosen = grad[picked]
    abs_err = np.abs(chosen - numeric)
    scale = np.maximum(np.abs(chosen), np.abs(numeric))
    rel_err = np.divide(abs_err, scale, out=np.zeros_like(abs_err), where=scale > 0)
    worst = int(np.argmax(abs_err)) if picked.size else 0
    return TensorCheck(
        name=name,
        checked=int(picked.size),
        total=int(flat.size),
        max_abs_error=float(abs_err.max(initial=0.0)),
        max_rel_error=float(rel_err.max(initial=0.0)),
        # ``not <=`` rather than ``>``: a NaN error (a NaN gradient on either side) is a failure
        failures=int(np.count_nonzero(~(abs_err <= atol + rtol * np.abs(numeric)))),
        worst_index=tuple(int(i) for i in np.unravel_index(picked[worst], array.shape)) if picked.size else (),
        analytic_at_worst=float(chosen[worst]) if picked.size else 0.0,
        numeric_at_worst=float(numeric[worst]) if picked.size else 0.0,
    )


def _options(eps: Any, atol: Any, rtol: Any, max_entries: Any, seed: Any) -> dict[str, Any]:
    return dict(
        eps=real("eps", eps, minimum=0.0, strict=True),
        atol=real("atol", atol, minimum=0.0),
        rtol=real("rtol", rtol, minimum=0.0),
        max_entries=None if max_entries is None else positive("max_entries", max_entries),
        rng=generator(seed, "seed"),
    )


def _check_arguments(module: Any, x: Any) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"module must be a symconv.nn.Module, but got {type(module).__name__}")
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy.ndarray, but got {type(x).__name__}")
    _require_float64("x", x)
    for name, parameter in module.named_parameters():
        _require_float64(f"parameter {name}", parameter.data)


def _output_shape(module: Module, x: np.ndarray) -> tuple[int, ...]:
    """The shape of ``module(x)``, leaving the module's state (running statistics) untouched."""
    state = module.state_dict()
    try:
        return np.shape(module(np.array(x, copy=True)))
    finally:
        module.load_state_dict(state)


def _run(
    module: Module,
    x: np.ndarray,
    objective: Callable[[np.ndarray], float],
    analytic: Callable[[np.ndarray], np.ndarray],
    options: dict[str, Any],
    check_input: bool,
) -> GradcheckResult:
    """The shared part: analytic gradients once, then differences for the input and parameters."""
    _check_arguments(module, x)
    named = list(module.named_parameters())
    saved_state, saved_grads = module.state_dict(), [p.grad for _, p in named]
    work = np.array(x, order="C", copy=True)
    try:
        module.zero_grad()
        dx = analytic(work)
        grads = {name: (p.grad if p.grad is not None else np.zeros_like(p.data)).copy() for name, p in named}
        checks = []
        if check_input:
            checks.append(_compare("input", work, dx, lambda: objective(work), options))
        for name, parameter in named:
            parameter.data = np.ascontiguousarray(parameter.data)
            checks.append(_compare(name, parameter.data, grads[name], lambda: objective(work), options))
    finally:
        module.load_state_dict(saved_state)
        for (_, parameter), grad in zip(named, saved_grads):
            parameter.grad = grad
    return GradcheckResult(tuple(checks), options["eps"], options["atol"], options["rtol"])


def gradcheck(
    module: Module,
    x: np.ndarray,
    *,
    grad_out: np.ndarray | None = None,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    max_entries: int | None = None,
    seed: int = 0,
    check_input: bool = True,
) -> GradcheckResult:
    """Check ``module.backward`` against central differences of ``J = Σ module(x) · grad_out``.

    ``grad_out`` defaults to a standard-normal array drawn from ``seed``. ``max_entries`` limits
    the entries checked per array (chosen at random) for big layers. The module and ``x`` must
    be float64; the module's parameters, buffers and grads are as before when this returns.
    """
    options = _options(eps, atol, rtol, max_entries, seed)
    _check_arguments(module, x)
    shape = _output_shape(module, x)
    if grad_out is None:
        grad_out = options["rng"].standard_normal(shape)
    elif not isinstance(grad_out, np.ndarray) or grad_out.shape != shape or grad_out.dtype != np.float64:
        got = f"{grad_out.dtype} {grad_out.shape}" if isinstance(grad_out, np.ndarray) else type(grad_out).__name__
        raise ValueError(f"grad_out must be a float64 array of the output's shape {shape}, but got {got}")
    weights = grad_out

    def objective(work: np.ndarray) -> float:
        return float(np.sum(module(work) * weights))

    def analytic(work: np.ndarray) -> np.ndarray:
        module(work)
        return module.backward(weights)

    return _run(module, x, objective, analytic, options, check_input)


def gradcheck_model(
    model: Module,
    loss: Module,
    x: np.ndarray,
    target: np.ndarray,
    *,
    eps: float = 1e-6,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    max_entries: int | None = None,
    seed: int = 0,
    check_input: bool = True,
) -> GradcheckResult:
    """Check a whole model: ``J = loss(model(x), target)``, backward through the loss and the model."""
    options = _options(eps, atol, rtol, max_entries, seed)

    def objective(work: np.ndarray) -> float:
        return float(loss(model(work), target))

    def analytic(work: np.ndarray) -> np.ndarray:
        loss(model(work), target)
        return model.backward(loss.backward())

    return _run(model, x, objective, analytic, options, check_input)

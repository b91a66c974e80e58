"""Lagrangian Neural Networks (Cranmer et al., 2020): learn a scalar Lagrangian, get the dynamics from it.

Paper notebook ``lectures/papers/lagrangian_nn.ipynb`` (beyond vision; no lecture). A plain network that maps a
state to its time derivative has no reason to conserve energy, so its long roll-outs drift. A Lagrangian Neural
Network (LNN) instead learns one scalar ``L(q, qdot)`` and obtains the accelerations from the Euler-Lagrange
equations ``d/dt dL/dqdot = dL/dq``, solved for ``qddot``:

    ``qddot = (H_qdot,qdot L)^-1 [grad_q L - (H_q,qdot L) qdot]``

where ``H_qdot,qdot L`` is the Hessian of ``L`` w.r.t. the velocities and ``(H_q,qdot L)[i, j] = d2L / dqdot_i dq_j``.
Every such system conserves its energy ``E = qdot . dL/dqdot - L`` exactly; the network cannot learn a
dissipative one by accident.

- :class:`DoublePendulum`            masses, lengths, g; analytic Lagrangian, energy and accelerations
- :func:`euler_lagrange_accelerations`  ``qddot`` from any Lagrangian by batched autograd
- :func:`rk4_step`, :func:`rollout`   the classical fourth-order Runge-Kutta integrator
- :func:`mlp`, :class:`LagrangianNN`, :class:`AccelerationMLP`  the learned Lagrangian and the plain baseline
- :func:`relative_energy_drift`      ``100 * (E(t) - E(0)) / E(0)`` along a trajectory

Conventions: ``q`` are generalised coordinates (the two angles from the downward vertical, radians), ``qdot``
their velocities; a state is ``x = (q, qdot)`` concatenated on the last axis. The potential is measured from the
hanging rest position, so the energy is ``>= 0`` and ``0`` only at rest (relative drift is well defined).

Letter legend: B batch of states, D degrees of freedom (2 for the double pendulum), T time steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from cvcourse._checks import check_tensor

__all__ = [
    "DoublePendulum",
    "euler_lagrange_accelerations",
    "dynamics",
    "rk4_step",
    "rollout",
    "mlp",
    "LagrangianNN",
    "AccelerationMLP",
    "relative_energy_drift",
]

Lagrangian = Callable[[Tensor, Tensor], Tensor]


def _check_state(x: Tensor, name: str = "state", dof: int | None = None) -> Tensor:
    check_tensor(x, name)
    if x.dim() < 1 or x.shape[-1] % 2 or x.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (..., 2 * D) = (q, qdot) concatenated on the last axis, got "
                         f"{tuple(x.shape)}")
    if dof is not None and x.shape[-1] != 2 * dof:
        raise ValueError(f"{name} must have last dimension 2 * D = {2 * dof} (q, qdot), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    return x


@dataclass(frozen=True)
class DoublePendulum:
    """Two point masses on massless rods, the first hinged at the origin, in gravity ``g`` (paper's test system).

    Args:
        m1, m2: the masses; l1, l2: the rod lengths; g: gravity. The paper uses all ones.

    State: ``(theta1, theta2, omega1, omega2)``, angles from the downward vertical.
    """

    m1: float = 1.0
    m2: float = 1.0
    l1: float = 1.0
    l2: float = 1.0
    g: float = 9.8

    def __post_init__(self) -> None:
        for k in ("m1", "m2", "l1", "l2", "g"):
            if not getattr(self, k) > 0:
                raise ValueError(f"{k} must be positive, got {getattr(self, k)}")

    def kinetic(self, q: Tensor, qdot: Tensor) -> Tensor:
        """``T = m1 l1^2 w1^2 / 2 + m2 (l1^2 w1^2 + l2^2 w2^2 + 2 l1 l2 w1 w2 cos(t1 - t2)) / 2``; shapes (..., 2) -> (...)."""
        t1, t2, w1, w2 = q[..., 0], q[..., 1], qdot[..., 0], qdot[..., 1]
        m1, m2, l1, l2 = self.m1, self.m2, self.l1, self.l2
        return 0.5 * m1 * (l1 * w1) ** 2 + 0.5 * m2 * (
            (l1 * w1) ** 2 + (l2 * w2) ** 2 + 2 * l1 * l2 * w1 * w2 * torch.cos(t1 - t2))

    def potential(self, q: Tensor) -> Tensor:
        """``V = (m1 + m2) g l1 (1 - cos t1) + m2 g l2 (1 - cos t2)`` (zero at rest); shape (..., 2) -> (...)."""
        t1, t2 = q[..., 0], q[..., 1]
        return (self.m1 + self.m2) * self.g * self.l1 * (1 - torch.cos(t1)) + self.m2 * self.g * self.l2 * (1 - torch.cos(t2))

    def lagrangian(self, q: Tensor, qdot: Tensor) -> Tensor:
        """The true Lagrangian ``L = T - V``; (..., 2), (..., 2) -> (...)."""
        return self.kinetic(q, qdot) - self.potential(q)

    def energy(self, state: Tensor) -> Tensor:
        """Total energy ``T + V`` of states (..., 4) -> (...)."""
        _check_state(state, dof=2)
        return self.kinetic(state[..., :2], state[..., 2:]) + self.potential(state[..., :2])

    def accelerations(self, state: Tensor) -> Tensor:
        """Analytic ``(dw1/dt, dw2/dt)`` of states (..., 4) -> (..., 2), from the closed-form equations of motion."""
        _check_state(state, dof=2)
        t1, t2, w1, w2 = state.unbind(-1)
        m1, m2, l1, l2, g = self.m1, self.m2, self.l1, self.l2, self.g
        d = t1 - t2
        # the two equations of motion written as w1' + a1 w2' = f1, a2 w1' + w2' = f2
        a1 = (l2 / l1) * (m2 / (m1 + m2)) * torch.cos(d)
        a2 = (l1 / l2) * torch.cos(d)
        f1 = -(l2 / l1) * (m2 / (m1 + m2)) * w2 ** 2 * torch.sin(d) - (g / l1) * torch.sin(t1)
        f2 = (l1 / l2) * w1 ** 2 * torch.sin(d) - (g / l2) * torch.sin(t2)
        det = 1 - a1 * a2
        return torch.stack([(f1 - a1 * f2) / det, (f2 - a2 * f1) / det], dim=-1)

    def derivative(self, state: Tensor) -> Tensor:
        """``dx/dt = (qdot, qddot)`` of states (..., 4) -> (..., 4), for :func:`rk4_step`."""
        return torch.cat([state[..., 2:], self.accelerations(state)], dim=-1)

    def random_states(self, n: int, generator: torch.Generator | None = None, max_speed: float = 1.0) -> Tensor:
        """``n`` states with angles uniform in ``[-pi, pi)`` and velocities uniform in ``[-max_speed, max_speed]``."""
        if n < 0 or max_speed < 0:
            raise ValueError(f"n and max_speed must be >= 0, got {n}, {max_speed}")
        u = torch.rand(n, 4, generator=generator)
        return torch.cat([(u[:, :2] * 2 - 1) * torch.pi, (u[:, 2:] * 2 - 1) * max_speed], dim=1)


def euler_lagrange_accelerations(lagrangian: Lagrangian, state: Tensor, create_graph: bool | None = None) -> Tensor:
    """Accelerations implied by a Lagrangian through the Euler-Lagrange equations, by automatic differentiation.

    ``qddot = (H_qdot,qdot L)^-1 [grad_q L - (H_q,qdot L) qdot]`` per state. Batched autograd: because the rows of
    a batch do not interact, the gradient of ``L.sum()`` w.r.t. the states is every row's own gradient, and the
    gradient of ``(dL/dqdot_j).sum()`` is every row's ``j``-th Hessian row. So one backward pass gives
    ``(grad_q L, grad_qdot L)`` and D more give the Hessian rows ``(d2L / dqdot_j dq, d2L / dqdot_j dqdot)``.
    With ``create_graph`` the result is differentiable w.r.t. anything ``lagrangian`` depends on (a network's
    weights), so it can sit inside a training loss.

    Args:
        lagrangian: ``L(q (Tensor[B, D]), qdot (Tensor[B, D])) -> Tensor[B]``, each row depending on its own state
            only (e.g. :meth:`DoublePendulum.lagrangian`, :class:`LagrangianNN`; no batch norm).
        state (Tensor[B, 2D]): ``(q, qdot)`` per row.
        create_graph: keep the graph of the derivatives (needed for training). Default: whether gradients are
            enabled where it is called, so under ``torch.no_grad()`` (roll-outs) the derivatives are still taken
            but no graph is kept.

    Returns:
        Tensor[B, D]: ``qddot``.

    Raises:
        ValueError: for a state that is not ``(B, 2D)`` or a Lagrangian that does not return ``(B,)``.
        torch.linalg.LinAlgError: where the velocity Hessian is singular, e.g. a ReLU network, whose second
            derivatives vanish.
    """
    _check_state(state)
    if state.dim() != 2:
        raise ValueError(f"state must have shape (B, 2 * D), got {tuple(state.shape)}")
    d = state.shape[-1] // 2
    if create_graph is None:
        create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        x = state.detach().requires_grad_(True)
        lag = lagrangian(x[:, :d], x[:, d:])
        if lag.shape != (x.shape[0],):
            raise ValueError(f"lagrangian must return one value per state, shape ({x.shape[0]},), got {tuple(lag.shape)}")
        (g,) = torch.autograd.grad(lag.sum(), x, create_graph=True)  # (B, 2D): (dL/dq, dL/dqdot)
        rows = [torch.autograd.grad(g[:, d + j].sum(), x, create_graph=create_graph, retain_graph=True)[0]
                for j in range(d)]
    hess = torch.stack(rows, dim=1)  # D of (B, 2D) -> (B, D, 2D): row j = d(dL/dqdot_j) / d(q, qdot)
    h_vq, h_vv = hess[:, :, :d], hess[:, :, d:]  # (B, D, D) each
    rhs = g[:, :d] - (h_vq @ state[:, d:, None]).squeeze(-1)  # (B, D)
    if not create_graph:
        rhs, h_vv = rhs.detach(), h_vv.detach()
    return torch.linalg.solve(h_vv, rhs)


def dynamics(acceleration: Callable[[Tensor], Tensor]) -> Callable[[Tensor], Tensor]:
    """Turn ``acceleration(state (B, 2D)) -> (B, D)`` into the first-order ODE ``dx/dt = (qdot, qddot)``."""
    def f(state: Tensor) -> Tensor:
        d = state.shape[-1] // 2
        return torch.cat([state[..., d:], acceleration(state)], dim=-1)
    return f


def rk4_step(f: Callable[[Tensor], Tensor], x: Tensor, dt: float) -> Tensor:
    """One classical Runge-Kutta step: ``x + dt/6 (k1 + 2 k2 + 2 k3 + k4)`` for ``dx/dt = f(x)`` (error O(dt^5))."""
    k1 = f(x)
    k2 = f(x + 0.5 * dt * k1)
    k3 = f(x + 0.5 * dt * k2)
    k4 = f(x + dt * k3)
    return x + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def rollout(f: Callable[[Tensor], Tensor], x0: Tensor, dt: float, steps: int) -> Tensor:
    """Integrate ``dx/dt = f(x)`` from ``x0 (Tensor[B, S])`` with :func:`rk4_step`; returns Tensor[T + 1, B, S] with
    ``x0`` first (no gradient is kept).

    Raises:
        ValueError: for ``dt <= 0``, negative ``steps`` or ``x0`` that is not ``(B, S)``.
    """
    check_tensor(x0, "x0")
    if x0.dim() != 2:
        raise ValueError(f"x0 must have shape (B, S), got {tuple(x0.shape)}")
    if not dt > 0 or steps < 0:
        raise ValueError(f"dt must be > 0 and steps >= 0, got dt={dt}, steps={steps}")
    out = [x0.detach()]
    x = x0.detach()
    with torch.no_grad():  # a learned Lagrangian still takes its derivatives inside f (see euler_lagrange_accelerations)
        for _ in range(int(steps)):
            x = rk4_step(f, x, dt)
            out.append(x)
    return torch.stack(out)  # T + 1 of (B, S) -> (T + 1, B, S)


def mlp(n_in: int, n_out: int, hidden: int = 128, layers: int = 3, activation: type[nn.Module] = nn.Softplus) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden`` with ``activation``, then a linear output layer."""
    if n_in < 1 or n_out < 1 or hidden < 1 or layers < 1:
        raise ValueError(f"n_in, n_out, hidden and layers must be >= 1, got {n_in}, {n_out}, {hidden}, {layers}")
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(n_in if i == 0 else hidden, hidden), activation()]
    return nn.Sequential(*mods, nn.Linear(hidden, n_out))


class LagrangianNN(nn.Module):
    """A learned scalar Lagrangian ``L(q, qdot) = MLP(q, qdot)`` (paper, section 4), with accelerations from
    :func:`euler_lagrange_accelerations`.

    The paper's activation is softplus: it needs ``L`` to have non-zero second derivatives. With ReLU the velocity
    Hessian is zero everywhere and the accelerations are undefined.

    Args:
        dof: D, degrees of freedom. hidden, layers, activation: of the :func:`mlp`.
        angles: feed ``(cos q, sin q)`` instead of ``q`` (makes ``L`` periodic in the angles).
    """

    def __init__(self, dof: int = 2, hidden: int = 128, layers: int = 3, activation: type[nn.Module] = nn.Softplus,
                 angles: bool = True) -> None:
        super().__init__()
        self.dof, self.angles = int(dof), bool(angles)
        self.net = mlp((3 if angles else 2) * self.dof, 1, hidden, layers, activation)

    def lagrangian(self, q: Tensor, qdot: Tensor) -> Tensor:
        """The learned ``L`` of (B, D), (B, D) -> (B,)."""
        feats = [torch.cos(q), torch.sin(q), qdot] if self.angles else [q, qdot]
        return self.net(torch.cat(feats, dim=-1)).squeeze(-1)

    def forward(self, state: Tensor) -> Tensor:
        """``qddot`` of states (B, 2D) -> (B, D) through the Euler-Lagrange equations (so that
        :func:`cvcourse.train.fit` trains it like any regressor)."""
        _check_state(state, dof=self.dof)
        return euler_lagrange_accelerations(self.lagrangian, state)

    accelerations = forward


class AccelerationMLP(nn.Module):
    """The baseline: an MLP that maps a state straight to its accelerations, with no physics built in.

    Same inputs as :class:`LagrangianNN` (``cos q, sin q, qdot`` by default) and the same :func:`mlp` body.
    """

    def __init__(self, dof: int = 2, hidden: int = 128, layers: int = 3, activation: type[nn.Module] = nn.Softplus,
                 angles: bool = True) -> None:
        super().__init__()
        self.dof, self.angles = int(dof), bool(angles)
        self.net = mlp((3 if angles else 2) * self.dof, self.dof, hidden, layers, activation)

    def accelerations(self, state: Tensor) -> Tensor:
        """``qddot`` of states (B, 2D) -> (B, D)."""
        _check_state(state, dof=self.dof)
        q, qdot = state[..., : self.dof], state[..., self.dof:]
        feats = [torch.cos(q), torch.sin(q), qdot] if self.angles else [q, qdot]
        return self.net(torch.cat(feats, dim=-1))

    forward = accelerations


def relative_energy_drift(energy: Callable[[Tensor], Tensor], trajectory: Tensor) -> Tensor:
    """``100 * (E(x_t) - E(x_0)) / E(x_0)`` in percent along ``trajectory (Tensor[T + 1, B, S])`` -> Tensor[T + 1, B].

    Raises:
        ValueError: for a trajectory that is not (T + 1, B, S) or starts at zero energy.
    """
    check_tensor(trajectory, "trajectory")
    if trajectory.dim() != 3:
        raise ValueError(f"trajectory must have shape (T + 1, B, S) as returned by rollout, got {tuple(trajectory.shape)}")
    e = energy(trajectory)
    if bool((e[0].abs() == 0).any()):
        raise ValueError("the trajectory starts at zero energy; the relative drift is undefined")
    return 100.0 * (e - e[0]) / e[0]

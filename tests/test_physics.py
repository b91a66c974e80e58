"""cvcourse.physics: the double-pendulum simulator against scipy's ODE solver and energy conservation, the
Euler-Lagrange accelerations against closed forms, RK4 by hand, and the bad-input paths."""

import numpy as np
import pytest
import torch
from torch import nn

from cvcourse.physics import (
    AccelerationMLP,
    DoublePendulum,
    LagrangianNN,
    dynamics,
    euler_lagrange_accelerations,
    relative_energy_drift,
    rk4_step,
    rollout,
)

PENDULUMS = [DoublePendulum(), DoublePendulum(m1=2.0, m2=0.5, l1=1.5, l2=0.7, g=3.0)]


def _states(n=32, seed=0, speed=3.0):
    return DoublePendulum().random_states(n, torch.Generator().manual_seed(seed), max_speed=speed).double()


@pytest.mark.parametrize("p", PENDULUMS)
def test_simulator_conserves_energy_with_small_dt(p):
    traj = rollout(p.derivative, _states(8), dt=1e-3, steps=2000)  # 2 s
    drift = relative_energy_drift(p.energy, traj)
    assert drift.abs().max() < 1e-6, drift.abs().max()
    # a coarse step drifts more: the conservation is the integrator's accuracy, not a tautology
    coarse = relative_energy_drift(p.energy, rollout(p.derivative, _states(8), dt=0.1, steps=20))
    assert coarse.abs().max() > 100 * drift.abs().max()


def test_simulator_matches_scipy_solve_ivp():
    from scipy.integrate import solve_ivp

    p = DoublePendulum(m1=1.3, m2=0.8, l1=1.0, l2=1.2)
    x0 = _states(1, seed=5)

    def rhs(_, y):
        return p.derivative(torch.from_numpy(y)[None])[0].numpy()

    ref = solve_ivp(rhs, (0, 1.0), x0[0].numpy(), method="DOP853", rtol=1e-11, atol=1e-11).y[:, -1]
    ours = rollout(p.derivative, x0, dt=1e-3, steps=1000)[-1, 0].numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-7)


@pytest.mark.parametrize("p", PENDULUMS)
def test_euler_lagrange_of_the_true_lagrangian_gives_the_analytic_accelerations(p):
    x = _states(64, seed=1, speed=5.0)
    torch.testing.assert_close(euler_lagrange_accelerations(p.lagrangian, x), p.accelerations(x))


def test_harmonic_oscillator_gives_minus_q():
    x = torch.randn(10, 2, dtype=torch.float64)  # (q, qdot), D = 1
    acc = euler_lagrange_accelerations(lambda q, v: (v ** 2 / 2 - q ** 2 / 2).sum(-1), x)
    torch.testing.assert_close(acc, -x[:, :1])
    # two decoupled oscillators with masses (2, 0.5) and stiffnesses (8, 2): qddot = -k / m q = (-4, -4) q
    m, k = torch.tensor([2.0, 0.5], dtype=torch.float64), torch.tensor([8.0, 2.0], dtype=torch.float64)
    x = torch.randn(10, 4, dtype=torch.float64)
    acc = euler_lagrange_accelerations(lambda q, v: (m * v ** 2 / 2 - k * q ** 2 / 2).sum(-1), x)
    torch.testing.assert_close(acc, -4 * x[:, :2])


def test_accelerations_are_differentiable_in_the_lagrangians_parameters():
    # L = a v^2 / 2 - b q^2 / 2  ->  qddot = -(b / a) q,  d qddot / da = b q / a^2
    a = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(3.0, dtype=torch.float64)
    x = torch.tensor([[1.5, -0.7]], dtype=torch.float64)
    acc = euler_lagrange_accelerations(lambda q, v: (a * v ** 2 / 2 - b * q ** 2 / 2).sum(-1), x)
    (da,) = torch.autograd.grad(acc.sum(), a)
    assert acc.item() == pytest.approx(-2.25) and da.item() == pytest.approx(3.0 * 1.5 / 4.0)


def test_relu_lagrangian_has_a_zero_velocity_hessian():
    torch.manual_seed(0)
    relu = LagrangianNN(hidden=16, layers=2, activation=nn.ReLU)
    with pytest.raises(torch.linalg.LinAlgError):
        relu(_states(4).float())
    soft = LagrangianNN(hidden=16, layers=2)
    assert torch.isfinite(soft(_states(4).float())).all()


def test_rk4_step_by_hand():
    # dx/dt = x: one step multiplies by 1 + h + h^2/2 + h^3/6 + h^4/24
    h = 0.3
    out = rk4_step(lambda x: x, torch.tensor([[2.0]], dtype=torch.float64), h)
    assert out.item() == pytest.approx(2.0 * (1 + h + h ** 2 / 2 + h ** 3 / 6 + h ** 4 / 24))


def test_models_shapes_and_dynamics():
    x = _states(5).float()
    assert LagrangianNN(hidden=8, layers=1)(x).shape == (5, 2)
    assert AccelerationMLP(hidden=8, layers=1)(x).shape == (5, 2)
    assert dynamics(AccelerationMLP(hidden=8, layers=1))(x).shape == (5, 4)
    traj = rollout(dynamics(LagrangianNN(hidden=8, layers=1)), x, 0.01, 3)
    assert traj.shape == (4, 5, 4) and torch.equal(traj[0], x)


def test_relative_energy_drift_hand_case():
    traj = torch.tensor([[[1.0]], [[1.1]], [[0.8]]])  # energy = the state itself
    torch.testing.assert_close(relative_energy_drift(lambda x: x[..., 0], traj), torch.tensor([[0.0], [10.0], [-20.0]]))


def test_bad_input():
    p = DoublePendulum()
    with pytest.raises(ValueError, match="2 \\* D"):
        euler_lagrange_accelerations(p.lagrangian, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="one value per state"):
        euler_lagrange_accelerations(lambda q, v: (q * v), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="last dimension 2 \\* D = 4"):
        p.accelerations(torch.zeros(3, 6))
    with pytest.raises(ValueError, match="m1 must be positive"):
        DoublePendulum(m1=0.0)
    with pytest.raises(ValueError, match="dt must be > 0"):
        rollout(p.derivative, torch.zeros(1, 4), dt=0.0, steps=3)
    with pytest.raises(ValueError, match="zero energy"):
        relative_energy_drift(p.energy, torch.zeros(3, 1, 4))

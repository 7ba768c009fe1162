"""The digits network's optimizer (quantpipe/mnist/adam.py): Adam in correctly rounded steps."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from quantpipe.mnist.adam import Adam, AdamConfig
from tests.test_serve import REPO_ROOT

F32 = np.float32


def test_the_first_step_moves_each_parameter_by_the_step_size_against_its_gradient():
    """Known answer: from zero moments, Adam's first step is -lr * sign(g) (up to eps)."""
    p = np.array([1.0, -2.0, 0.5, 3.0], dtype=F32)
    g = np.array([0.5, -4.0, 0.0, 1e-3], dtype=F32)
    Adam([p], AdamConfig(learning_rate=0.01)).step([g])
    np.testing.assert_allclose(p, [0.99, -1.99, 0.5, 2.99], rtol=0, atol=1e-6)
    assert p[2] == F32(0.5)  # no gradient, no move, exactly


def test_a_step_on_two_parameters_of_other_shapes_keeps_their_shapes_and_storage():
    w = np.ones((2, 3), dtype=F32)
    b = np.zeros(2, dtype=F32)
    storage = w.ctypes.data
    opt = Adam([w, b], AdamConfig(learning_rate=0.1))
    opt.step([np.full((2, 3), 2.0, dtype=F32), np.array([-1.0, 1.0], dtype=F32)])
    assert w.shape == (2, 3)
    assert w.ctypes.data == storage
    assert opt.steps == 1
    np.testing.assert_allclose(w, 0.9, atol=1e-6)
    np.testing.assert_allclose(b, [0.1, -0.1], atol=1e-6)


def _scalar_step(
    p: float, g: float, m: float, v: float, t: int, c: AdamConfig
) -> tuple[float, float, float]:
    """One step on one element in float32 scalars, the documented formula, op by op."""
    w1, w2, beta2 = F32(1.0 - c.beta1), F32(1.0 - c.beta2), F32(c.beta2)
    step = F32(c.learning_rate / (1.0 - math.prod([c.beta1] * t)))
    root2 = F32(math.sqrt(1.0 - math.prod([c.beta2] * t)))
    m = F32(m) + (F32(g) - F32(m)) * w1
    v = F32(v) * beta2 + (w2 * F32(g)) * F32(g)
    denom = F32(np.sqrt(v)) / root2 + F32(c.eps)
    return float(F32(p) + (-step * m) / denom), float(m), float(v)


FINITE = st.floats(-1e3, 1e3, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    start=arrays(F32, st.integers(1, 37), elements=FINITE),
    grads=st.lists(arrays(F32, 37, elements=FINITE), min_size=1, max_size=4),
)
def test_array_steps_round_as_the_scalar_formula_does_element_by_element(start, grads):
    """Whatever SIMD width numpy uses, each element sees the same IEEE operations."""
    n = start.size
    config = AdamConfig(learning_rate=0.002)
    p = start.copy()
    opt = Adam([p], config)
    expected = [(float(x), 0.0, 0.0) for x in start]
    for t, g in enumerate(grads, start=1):
        opt.step([g[:n].copy()])
        expected = [
            _scalar_step(pe, float(ge), me, ve, t, config)
            for (pe, me, ve), ge in zip(expected, g[:n], strict=True)
        ]
    assert p.tobytes() == np.array([e[0] for e in expected], dtype=F32).tobytes()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("learning_rate", 0.0, r"learning_rate must be in \(0, 1\], not 0.0"),
        ("learning_rate", 1.5, r"learning_rate must be in \(0, 1\], not 1.5"),
        ("beta1", 1.0, r"beta1 must be in \[0, 1\), not 1.0"),
        ("beta2", -0.1, r"beta2 must be in \[0, 1\), not -0.1"),
        ("eps", 0.0, r"eps must be > 0, not 0.0"),
    ],
)
def test_a_bad_constant_is_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        AdamConfig(**{"learning_rate": 0.01, field: value})


def test_parameters_and_gradients_that_do_not_fit_are_refused():
    with pytest.raises(ValueError, match="parameter 0 must be a writeable C-contiguous float32"):
        Adam([np.zeros(3)], AdamConfig(0.01))
    with pytest.raises(ValueError, match=r"contiguous=False"):
        Adam([np.zeros((3, 4), dtype=F32)[:, ::2]], AdamConfig(0.01))
    frozen = np.zeros(3, dtype=F32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"writeable=False"):
        Adam([frozen], AdamConfig(0.01))
    opt = Adam([np.zeros(3, dtype=F32)], AdamConfig(0.01))
    with pytest.raises(ValueError, match="2 gradients for 1 parameters"):
        opt.step([np.zeros(3, dtype=F32)] * 2)
    with pytest.raises(ValueError, match=r"gradient 0 is float64 \(3,\), its parameter float32"):
        opt.step([np.zeros(3)])
    with pytest.raises(ValueError, match=r"gradient 0 is float32 \(4,\)"):
        opt.step([np.zeros(4, dtype=F32)])
    assert opt.steps == 0


AGAINST_TORCH = """
import json, math, numpy as np
from quantpipe.mnist.adam import Adam, AdamConfig
from quantpipe.mnist.training import pin_torch
torch = pin_torch()
rng = np.random.default_rng(3)
start = rng.standard_normal(1000).astype(np.float32)
grads = rng.standard_normal((50, 1000)).astype(np.float32)
mine = start.copy()
opt = Adam([mine], AdamConfig(0.002))
theirs = torch.nn.Parameter(torch.from_numpy(start.copy()))
ref = torch.optim.Adam([theirs], lr=0.002)
# torch's single-tensor Adam step, op for op, with numpy's square root in torch.sqrt's place
# (and beta**t as the running product the optimizer keeps)
p, m, v = torch.from_numpy(start.copy()), torch.zeros(1000), torch.zeros(1000)
for t, g in enumerate(grads, start=1):
    opt.step([g])
    theirs.grad = torch.from_numpy(g.copy())
    ref.step()
    gt = torch.from_numpy(g)
    m.lerp_(gt, 1 - 0.9)
    v.mul_(0.999).addcmul_(gt, gt, value=1 - 0.999)
    step_size = 0.002 / (1 - math.prod([0.9] * t))
    root2 = math.sqrt(1 - math.prod([0.999] * t))
    denom = (torch.from_numpy(np.sqrt(v.numpy())) / root2).add_(1e-8)
    p.addcdiv_(m, denom, value=-step_size)
moved = np.abs(theirs.detach().numpy() - start)
print(json.dumps([
    float(np.abs(mine - theirs.detach().numpy()).max()),
    float(np.median(moved)),
    mine.tobytes() == p.numpy().tobytes(),
]))
"""


@pytest.mark.slow
def test_fifty_steps_are_torchs_adam_op_for_op_but_the_square_root():
    """``torch.optim.Adam``'s steps in its order; only its square roots round otherwise."""
    out = subprocess.run(
        [sys.executable, "-c", AGAINST_TORCH],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    worst, median_moved, same_as_torchs_ops = json.loads(out)
    assert same_as_torchs_ops  # bit for bit, torch's ops with numpy's square root
    assert median_moved > 1e-2  # the steps moved the parameters: the comparison means something
    assert worst < 1.2e-7  # against torch.optim.Adam itself: a unit or two in the last place

"""Pure schedule functions: learning rates and co-teaching's forget rate, by hand."""
import math

import pytest

from noisycore.config import ConfigError
from noisycore.schedules import coteaching_forget_rate, cosine_lr, lr_at, onecycle_lr


def test_forget_rate_ramps_linearly_then_stays():
    rates = [coteaching_forget_rate(e, tau=0.4, t_k=10) for e in range(13)]
    assert rates[0] == 0.0
    assert rates[5] == pytest.approx(0.2)
    assert rates[10] == rates[11] == rates[12] == pytest.approx(0.4)
    assert all(b >= a for a, b in zip(rates, rates[1:]))
    assert coteaching_forget_rate(3, tau=0.3, t_k=0) == 0.3   # no ramp


@pytest.mark.parametrize("kwargs", [{"epoch": -1, "tau": 0.2}, {"epoch": 1, "tau": 1.0}, {"epoch": 1.5, "tau": 0.2}])
def test_forget_rate_rejects_bad_input(kwargs):
    epoch = kwargs.pop("epoch")
    with pytest.raises(ConfigError):
        coteaching_forget_rate(epoch, **kwargs)


def test_cosine_by_hand():
    assert cosine_lr(0, lr=0.1, epochs=10) == pytest.approx(0.1)
    assert cosine_lr(5, lr=0.1, epochs=10) == pytest.approx(0.05)
    assert cosine_lr(10, lr=0.1, epochs=10, min_lr=1e-4) == pytest.approx(1e-4)
    assert cosine_lr(2, lr=0.1, epochs=10) == pytest.approx(0.05 * (1 + math.cos(math.pi * 0.2)))


def test_onecycle_warms_up_then_anneals():
    lrs = [onecycle_lr(e, lr=0.1, epochs=10) for e in range(10)]
    assert lrs[0] == pytest.approx(0.1 / 25)
    assert max(lrs) == pytest.approx(0.1) and lrs.index(max(lrs)) == 3
    assert lrs[-1] == pytest.approx(0.1 / 1e4)
    assert all(b <= a for a, b in zip(lrs[3:], lrs[4:]))


def test_lr_at_dispatches_and_rejects_plateau():
    assert lr_at("constant", 7, lr=0.01, epochs=10) == 0.01
    assert lr_at("cosine", 5, lr=0.1, epochs=10) == pytest.approx(0.05)
    with pytest.raises(ConfigError, match="plateau"):
        lr_at("plateau", 0, lr=0.1, epochs=10)

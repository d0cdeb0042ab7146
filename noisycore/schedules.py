"""Schedules as pure functions of the epoch (0-based = epochs completed): easy to chart and test.

``lr_at`` gives the learning rate of the epoch about to start for the per-epoch schedules
(constant, cosine, onecycle); ``plateau`` is reactive (Keras ReduceLROnPlateau) and has no formula.
``coteaching_forget_rate`` is the share of each batch that co-teaching drops (Han et al. 2018).
"""
from __future__ import annotations

import math

from noisycore.config import ConfigError


def constant_lr(epoch: int, *, lr: float) -> float:
    """lr_e = lr for every epoch."""
    _check_epoch(epoch)
    return float(lr)


def cosine_lr(epoch: int, *, lr: float, epochs: int, min_lr: float = 0.0) -> float:
    """Cosine annealing without restarts: lr_e = min_lr + (lr - min_lr) (1 + cos(pi e / E)) / 2.

    e = 0 gives lr, e = E gives min_lr (Loshchilov & Hutter 2017, SGDR).
    """
    _check_epoch(epoch)
    progress = min(epoch / max(int(epochs), 1), 1.0)
    return float(min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def onecycle_lr(epoch: int, *, lr: float, epochs: int, warmup: float = 0.3,
                div: float = 25.0, final_div: float = 1e4) -> float:
    """One-cycle policy per epoch: linear warm-up lr/div -> lr over the first `warmup` share, then
    cosine down to lr/final_div at the last epoch (Smith & Topin 2019, "Super-Convergence").
    """
    _check_epoch(epoch)
    epochs = max(int(epochs), 1)
    peak = max(int(round(warmup * epochs)), 1)
    if epoch < peak:
        return float(lr / div + (lr - lr / div) * epoch / peak)
    span = max(epochs - 1 - peak, 1)
    progress = min((epoch - peak) / span, 1.0)
    low = lr / final_div
    return float(low + (lr - low) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def warmup_linear_lr(epoch: int, *, lr: float, epochs: int, warmup: float = 0.23,
                     start: float = 0.2, end: float = 0.07) -> float:
    """airbench's schedule per epoch: linear from start*lr up to lr over the first `warmup` share of
    training, then linear down to end*lr, evaluated at the middle of the epoch, t = (e + 0.5) / E
    (Jordan 2024: warm-up 23% of the steps from 0.2 to 1, then decay to 0.07).
    """
    _check_epoch(epoch)
    epochs = max(int(epochs), 1)
    t = min((epoch + 0.5) / epochs, 1.0)
    if t < warmup:
        return float(lr * (start + (1.0 - start) * t / warmup))
    return float(lr * (1.0 + (end - 1.0) * (t - warmup) / (1.0 - warmup)))


LR_SCHEDULE_FUNCTIONS = {"constant": constant_lr, "cosine": cosine_lr, "onecycle": onecycle_lr,
                         "warmup_linear": warmup_linear_lr}


def lr_at(name: str, epoch: int, *, lr: float, epochs: int, min_lr: float = 0.0) -> float:
    """The learning rate of epoch `epoch` under the per-epoch schedule `name`."""
    if name == "constant":
        return constant_lr(epoch, lr=lr)
    if name == "cosine":
        return cosine_lr(epoch, lr=lr, epochs=epochs, min_lr=min_lr)
    if name == "onecycle":
        return onecycle_lr(epoch, lr=lr, epochs=epochs)
    if name == "warmup_linear":
        return warmup_linear_lr(epoch, lr=lr, epochs=epochs)
    raise ConfigError(f"lr schedule {name!r} has no formula; choose one of: {', '.join(LR_SCHEDULE_FUNCTIONS)} "
                      "(plateau reacts to val_loss instead)")


def coteaching_forget_rate(epoch: int, *, tau: float, t_k: int = 10) -> float:
    """Co-teaching's forget rate: R(e) = tau * min(e / T_k, 1), e = epochs completed.

    Starts at 0 (keep everything while the networks learn the easy, mostly clean patterns) and
    ramps linearly to tau at epoch T_k (Han et al. 2018, "Co-teaching", Algorithm 1, R(T)).
    """
    _check_epoch(epoch)
    if not (0.0 <= tau < 1.0):
        raise ConfigError(f"forget rate tau={tau} must be in [0, 1)")
    if int(t_k) < 0:
        raise ConfigError(f"t_k={t_k} must be >= 0 epochs")
    if int(t_k) == 0:
        return float(tau)
    return float(tau * min(epoch / int(t_k), 1.0))


def _check_epoch(epoch) -> None:
    if isinstance(epoch, bool) or int(epoch) != epoch or epoch < 0:
        raise ConfigError(f"epoch={epoch!r} must be an integer >= 0")

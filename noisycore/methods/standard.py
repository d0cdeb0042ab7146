"""The standard method (one network, any loss) and the interface every method follows.

``noisycore.train`` builds a ``TrainContext`` and drives a method object:

    method = METHODS[name](ctx, **params)
    model = method.build()                      # compiled keras.Model that fit() trains
    model.fit(method.train_data(), validation_data=method.val_data(), callbacks=[... + method.callbacks()])
    method.after_epoch(epoch, probs_fit, model) # after each epoch: predictions on the un-augmented
                                                # training split -> extra metric columns (dict)
    method.predictor(model)                     # the single network that predicts and is saved

Ground-truth labels never enter training: ``ctx.report_truth`` exists only so that a method can
*report* (e.g. how many label corrections were right); nothing it feeds to the model depends on it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from noisycore.config import TrainConfig
from noisycore.catalog import method_params

EVAL_BATCH = 512  # images per batch for validation and prediction passes


@dataclass
class TrainContext:
    """What a method needs: the config, the training / validation split and the resolved loss."""

    config: TrainConfig
    x_fit: np.ndarray                    # uint8 (N_fit, H, W, 3): the images trained on
    y_fit: np.ndarray                    # int64 (N_fit,): their given (possibly wrong) labels
    x_val: np.ndarray                    # uint8 (N_val, H, W, 3): held out from the training data
    y_val: np.ndarray                    # int64 (N_val,): noisy labels, or true ones with trusted_val
    num_classes: int
    loss_kwargs: dict                    # loss hyper-parameters (forward: noise_matrix filled in)
    noise_rate: Optional[float] = None   # estimated / requested share of wrong labels (co-teaching's tau)
    run_dir: Optional[Path] = None       # where a method may write its own reports
    report_truth: Optional[np.ndarray] = None  # true labels of the fit split: for reports only, never training

    @property
    def input_shape(self) -> tuple:
        return tuple(self.x_fit.shape[1:])


class StandardMethod:
    """One network trained on the given labels with the configured loss (plain ``fit``)."""

    name = "standard"
    uses_fit_probs = False      # after_epoch reads the predictions of every fit image (else it gets None)
    extra_val_metrics = False   # validation reports more than loss and accuracy: Keras' pass stays on

    def __init__(self, ctx: TrainContext, **params):
        self.ctx = ctx
        self.params = method_params(self.name, params)

    # -- building blocks shared by the methods ------------------------------------------------
    def network(self, *, seed_offset: int = 0) -> keras.Model:
        """A fresh network from the registry (seed = config seed + seed_offset)."""
        from noisycore.models import build_model, init_from_data

        c = self.ctx.config
        options = {k: v for k, v in (("width", c.model_width), ("activation", c.model_activation)) if v is not None}
        net = build_model(c.model, input_shape=self.ctx.input_shape, num_classes=self.ctx.num_classes,
                          dropout=c.dropout, batchnorm=c.batchnorm, weight_decay=c.weight_decay,
                          seed=c.seed + seed_offset, **options)
        init_from_data(net, self.ctx.x_fit, seed=c.seed + seed_offset)   # fast_cnn's whitening: the fit split only
        return net

    def optimizer(self) -> keras.optimizers.Optimizer:
        """Adam, or SGD with (Nesterov) momentum 0.9, at the configured (initial) learning rate;
        ``ema_momentum`` > 0 keeps Keras' moving average of the weights (``use_ema``)."""
        c = self.ctx.config
        ema = {"use_ema": True, "ema_momentum": c.ema_momentum} if c.ema_momentum > 0 else {}
        if c.optimizer in ("sgd", "nesterov"):
            return keras.optimizers.SGD(learning_rate=c.learning_rate, momentum=0.9,
                                        nesterov=c.optimizer == "nesterov", **ema)
        return keras.optimizers.Adam(learning_rate=c.learning_rate, **ema)

    def loss(self, *, reduction: str = "sum_over_batch_size") -> keras.losses.Loss:
        from noisycore.losses import get_loss

        return get_loss(self.ctx.config.loss, num_classes=self.ctx.num_classes, reduction=reduction,
                        **self.ctx.loss_kwargs)

    def per_example_loss(self):
        """``(y_true (B, K), y_pred (B, K)) -> (B,)`` for the configured loss."""
        from noisycore.losses import per_example_loss

        return per_example_loss(self.ctx.config.loss, num_classes=self.ctx.num_classes, **self.ctx.loss_kwargs)

    def train_dataset(self, *, with_index: bool = False, mixup: bool = True, keep=None):
        from noisycore.pipeline import make_dataset

        c = self.ctx.config
        return make_dataset(self.ctx.x_fit, self.ctx.y_fit, num_classes=self.ctx.num_classes,
                            batch_size=c.batch_size, augment=c.augment, cutout=c.cutout, shuffle=True,
                            seed=c.seed, mixup_alpha=c.mixup_alpha if mixup else 0.0, with_index=with_index,
                            keep=keep)

    # -- the interface ------------------------------------------------------------------------
    def build(self) -> keras.Model:
        """The compiled model that ``fit`` trains."""
        net = self.network()
        net.compile(optimizer=self.optimizer(), loss=self.loss(),
                    metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
        return net

    def train_data(self):
        """Shuffled, augmented batches (x, y) of the fit split."""
        return self.train_dataset()

    def val_data(self):
        """Validation batches (x, y), never augmented."""
        from noisycore.pipeline import make_dataset

        return make_dataset(self.ctx.x_val, self.ctx.y_val, num_classes=self.ctx.num_classes,
                            batch_size=EVAL_BATCH)

    def callbacks(self) -> list:
        """Extra Keras callbacks of this method."""
        return []

    def predictor(self, model: keras.Model) -> keras.Model:
        """The single network that predicts, is evaluated and saved (best.keras / last.keras)."""
        return model

    def after_epoch(self, epoch: int, probs_fit: np.ndarray, model: keras.Model) -> dict:
        """Called after epoch ``epoch`` (0-based) with predictions (N_fit, K) on the un-augmented
        fit split (None unless ``uses_fit_probs``: large sets predict a sample); returns extra
        metric columns for that epoch."""
        return {}

    def fit_batches(self) -> int:
        """Training batches in the coming epoch (methods that leave images out return fewer)."""
        return -(-len(self.ctx.y_fit) // self.ctx.config.batch_size)

    def lr_phase(self, epoch: int) -> tuple:
        """(epoch, epochs) the learning-rate schedule is evaluated at: the whole run by default;
        a method that restarts its schedule returns the epoch within the phase and its length."""
        return epoch, self.ctx.config.epochs

    def final_fit_labels(self) -> np.ndarray:
        """The labels the method ended up training on (label correction changes them)."""
        return self.ctx.y_fit

    def summary(self) -> dict:
        """Method-specific numbers for summary.json."""
        return {}

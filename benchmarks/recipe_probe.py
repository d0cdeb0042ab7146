"""Recipe probe: one fast_cnn training without the app's per-epoch evaluation, to compare recipe
variants on full CIFAR-10 quickly (accuracy, not time: run two side by side if you like).

    python benchmarks/recipe_probe.py --tag base --epochs 8                      # the fast recipe, label smoothing
    python benchmarks/recipe_probe.py --tag w1 --epochs 6 --width 1.0            # airbench94's width
    python benchmarks/recipe_probe.py --tag f32 --epochs 8 --precision float32
    python benchmarks/recipe_probe.py --tag gce40 --epochs 8 --loss gce --setting sym40
    python benchmarks/recipe_probe.py --tag drop --epochs 8 --loss gce --setting worst --phase2 8
    python benchmarks/recipe_probe.py --tag smoke --dataset builtin --max-train 300 --epochs 1 --phase2 1

It uses the app's own pieces and splits: the noise setting and the fit / validation split of
``benchmarks/common.py`` and ``noisycore.train`` (seed 0), ``models.build_model("fast_cnn")`` with the
whitening initialization from the fit split, the pipeline's flip + translate augmentation, the app's
losses and ``warmup_linear`` schedule, Nesterov SGD with Keras' EMA (which ``fit`` copies into the
weights at its end), and flip-TTA test accuracy. Options change one thing each (see --help).
``--phase2 N`` then flags the fit labels with confident learning on the model's flip-TTA predictions,
drops (or ``--phase2-action relabel``: relabels) them and trains N more epochs with a restarted
schedule (``--phase2-reinit``: a new network, so nothing memorized in the first phase carries over).
``--elr L`` adds early-learning regularization (Liu et al. 2020) with weight L to the loss.
``--ensemble N`` trains N networks one after another (seeds 0..N-1) and reports the accuracy of their
mean flip-TTA probabilities besides each member's (``--save-test-probs F.npz`` keeps the members'
probabilities). Training runs on one endless iterator
(``pipeline.endless``), as the app's runs do.
Appends one JSON line per run to --out (default benchmarks/results/recipe_probe.jsonl).

Every run reports ``val_accuracy`` (flip TTA on the noisy validation split: 10% of the training images with
their given, possibly wrong, labels) beside ``test_accuracy``. Choose between variants on validation, never
on the test set the benchmarks then report:

    python benchmarks/recipe_probe.py --choose ls40,gce40     # the last run of each tag; the best validation wins
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tag", default=None, help="the run's name in the results (required unless --choose)")
    p.add_argument("--choose", default=None, metavar="TAG,TAG,...",
                   help="train nothing: of these tags' runs in --out, name the one with the best noisy-validation "
                        "accuracy (test accuracy is shown, not used)")
    p.add_argument("--dataset", default="cifar10", choices=("cifar10", "builtin"))
    p.add_argument("--setting", default="clean", help="a noise setting of benchmarks/common.py (clean, sym40, worst, ...)")
    p.add_argument("--max-train", type=int, default=None, help="training images (default all)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--loss", default="label_smoothing", choices=("label_smoothing", "gce", "ce"))
    p.add_argument("--width", type=float, default=0.5, help="fast_cnn width (1.0 = airbench94)")
    p.add_argument("--precision", default="bfloat16", choices=("bfloat16", "float32"))
    p.add_argument("--lr", type=float, default=0.4)
    p.add_argument("--end", type=float, default=0.07, help="final learning rate as a share of the peak")
    p.add_argument("--per-step", action="store_true", help="the schedule per optimizer step instead of per epoch")
    p.add_argument("--bn-momentum", type=float, default=None, help="BatchNorm momentum (Keras convention)")
    p.add_argument("--bn-epsilon", type=float, default=None)
    p.add_argument("--activation", default=None, choices=("gelu", "relu"),
                   help="fast_cnn's activation (default: the builder's)")
    p.add_argument("--keras-bn", action="store_true",
                   help="Keras' BatchNormalization instead of the fused kernel (the recipe before 2026-12-01)")
    p.add_argument("--no-ema", action="store_true", help="no moving average of the weights")
    p.add_argument("--mixup", type=float, default=0.0, help="mixup Beta(a, a) of the training batches (0 = off)")
    p.add_argument("--elr", type=float, default=0.0, help="early-learning regularization's lambda (0 = off; paper: 3)")
    p.add_argument("--elr-beta", type=float, default=0.7, help="ELR's running average of the predictions")
    p.add_argument("--q", type=float, default=0.7, help="GCE's q")
    p.add_argument("--l2", type=float, default=5e-4, help="L2 weight decay of every conv / dense kernel (the preset's 5e-4)")
    p.add_argument("--ema-momentum", type=float, default=0.95, help="the weight average's momentum per step")
    p.add_argument("--ema-overwrite", type=int, default=0,
                   help="every this many steps the weights are replaced by their average (lookahead-like; 0 = never)")
    p.add_argument("--every-epoch", action="store_true",
                   help="test accuracy after every epoch too (the averaged weights, flip TTA)")
    p.add_argument("--torch-init", action="store_true",
                   help="non-identity conv filters with PyTorch's default scale (uniform, std 1/sqrt(3 fan_in))")
    p.add_argument("--batch-crop", action="store_true",
                   help="keras.layers.RandomCrop (one shift per batch) instead of the pipeline's per-image crop")
    p.add_argument("--phase2", type=int, default=0, help="epochs of a second phase on the cleaned labels")
    p.add_argument("--phase2-action", default="drop", choices=("drop", "relabel"))
    p.add_argument("--phase2-reinit", action="store_true",
                   help="the second phase trains a new network (whitened from the kept images) instead of going on")
    p.add_argument("--ensemble", type=int, default=1,
                   help="train this many networks (seeds 0..N-1, own data order) and also report the accuracy of "
                        "their mean flip-TTA probabilities")
    p.add_argument("--save-test-probs", default=None,
                   help="with --ensemble: write each member's flip-TTA test probabilities and the test labels "
                        "to this .npz (members: (N, images, classes), y_test)")
    p.add_argument("--out", default=str(common.ROOT / "benchmarks" / "results" / "recipe_probe.jsonl"))
    return p.parse_args(argv)


def _variants(a) -> None:
    """Apply the options that change the app's building blocks for this process only."""
    import keras

    import noisycore.models as models
    import noisycore.pipeline as pipeline

    if a.bn_momentum is not None or a.bn_epsilon is not None or a.keras_bn:
        common.use_fast_norm(keras_bn=a.keras_bn, momentum=a.bn_momentum, epsilon=a.bn_epsilon)
    if a.torch_init:
        class TorchScaleDirac(models.DiracInit):
            def __call__(self, shape, dtype=None):
                kernel = keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform", seed=self.seed)(shape)
                kh, kw, c_in, c_out = shape
                n = min(c_in, c_out)
                eye = np.zeros(shape, np.float32)
                eye[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1.0
                mask = np.ones((1, 1, 1, c_out), np.float32)
                mask[..., :n] = 0.0
                return kernel * mask + eye
        models.DiracInit = TorchScaleDirac
    if a.batch_crop:
        build = pipeline.augmentation_layers

        def batch_crop(name, **kw):
            seq = build(name, **kw)
            return keras.Sequential([keras.layers.RandomCrop(layer.size, layer.size, seed=1)
                                     if isinstance(layer, pipeline.PerImageRandomCrop) else layer
                                     for layer in seq.layers])
        pipeline.augmentation_layers = batch_crop


def _fit_split(a):
    from noisycore import train

    config = common.cell_config(dataset=a.dataset, budget=common.Budget(a.max_train, None, a.epochs, ""),
                                setting=a.setting, recipe="fast", seed=0)
    prepared = train.prepare(config)
    ctx = train.make_context(config, prepared, None)[0]
    return prepared.dataset, ctx


def _elr_model(net, n: int, k: int, *, lam: float, beta: float):
    """Early-learning regularization (Liu et al. 2020): the loss plus lam * mean log(1 - <t_i, p_i>), where
    t_i is a running average (beta) of the network's own predictions for image i. While the network
    still predicts the true class of a wrong label (early learning), the term pulls p_i towards t_i and
    away from memorizing the given label. Training batches are (x, y, index)."""
    import keras
    import tensorflow as tf

    class ELR(keras.Model):
        def __init__(self):
            super().__init__(name="elr")
            self.net = net
            self.targets = self.add_weight(shape=(n, k), initializer="zeros", trainable=False, name="elr_targets")

        def call(self, x, training=False):
            return self.net(x, training=training)

        def train_step(self, data):
            x, y, index = data
            with tf.GradientTape() as tape:
                p = self(x, training=True)
                pc = tf.clip_by_value(tf.cast(p, tf.float32), 1e-4, 1.0 - 1e-4)
                pc = pc / tf.reduce_sum(pc, axis=1, keepdims=True)
                t = beta * tf.gather(self.targets, index) + (1.0 - beta) * tf.stop_gradient(pc)
                loss = self.compute_loss(x=x, y=y, y_pred=p, training=True)
                total = loss + lam * tf.reduce_mean(tf.math.log(1.0 - tf.reduce_sum(t * pc, axis=1)))
            self.targets.assign(tf.tensor_scatter_nd_update(self.targets, tf.expand_dims(index, 1), t))
            grads = tape.gradient(total, self.trainable_variables)
            self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
            if getattr(self, "_loss_tracker", None) is not None:     # the "loss" fit prints (with the ELR term)
                self._loss_tracker.update_state(total)
            return self.compute_metrics(x, y, p, sample_weight=None)

    return ELR()


def _schedule(a, epochs: int, steps: int):
    import keras

    from noisycore.schedules import warmup_linear_lr

    if not a.per_step:
        return a.lr, [keras.callbacks.LearningRateScheduler(
            lambda e, _: warmup_linear_lr(e, lr=a.lr, epochs=epochs, end=a.end))]

    class PerStep(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            t = keras.ops.cast(step, "float32") / float(steps * epochs)
            up, down = 0.2 + 0.8 * t / 0.23, 1.0 + (a.end - 1.0) * (t - 0.23) / 0.77
            return a.lr * keras.ops.where(t < 0.23, up, down)
    return PerStep(), []


def run(a) -> dict:
    import keras

    from noisycore.detectors import find_label_issues
    from noisycore.losses import get_loss
    from noisycore.models import build_model, init_from_data
    from noisycore.pipeline import endless, make_dataset, predict_probs

    _variants(a)
    keras.utils.set_random_seed(0)
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if a.precision == "bfloat16" else "float32")
    ds, ctx = _fit_split(a)
    x, y, truth, k = ctx.x_fit, np.asarray(ctx.y_fit), ctx.report_truth, ds.num_classes
    def new_model(images, lr, seed):
        net = build_model("fast_cnn", input_shape=x.shape[1:], num_classes=k, weight_decay=a.l2, seed=seed,
                          width=a.width, **({"activation": a.activation} if a.activation else {}))
        init_from_data(net, images)
        ema = {} if a.no_ema else {"use_ema": True, "ema_momentum": a.ema_momentum,
                                   "ema_overwrite_frequency": a.ema_overwrite or None}
        opt = keras.optimizers.SGD(learning_rate=lr, momentum=0.9, nesterov=True, **ema)
        params = {"label_smoothing": {"epsilon": 0.2}, "gce": {"q": a.q}, "ce": {}}[a.loss]
        if a.elr:
            net = _elr_model(net, len(images), k, lam=a.elr, beta=a.elr_beta)
        net.compile(optimizer=opt, loss=get_loss(a.loss, num_classes=k, **params), metrics=["accuracy"])
        return net

    steps = -(-len(x) // 256)
    lr, callbacks = _schedule(a, a.epochs, steps)
    model = new_model(x, lr, 0)
    y_test = np.asarray(ds.y_test)
    accuracy = lambda: float((predict_probs(model, ds.x_test, tta="flip").argmax(1) == y_test).mean())  # noqa: E731
    x_val, y_val = ctx.x_val, np.asarray(ctx.y_val)       # the given labels of the validation split (noisy)
    val_accuracy = lambda: float((predict_probs(model, x_val, tta="flip").argmax(1) == y_val).mean())  # noqa: E731

    per_epoch = []

    class EpochAccuracy(keras.callbacks.Callback):     # after SwapEMAWeights: sees the averaged weights
        def on_epoch_end(self, epoch, logs=None):
            per_epoch.append(round(accuracy() * 100, 2))
            print(f"epoch {epoch + 1}: test {per_epoch[-1]}", flush=True)

    if a.every_epoch:
        callbacks = callbacks + ([] if a.no_ema else [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)]) + \
            [EpochAccuracy()]

    def fit(images, labels, epochs, callbacks, seed):
        data = make_dataset(images, labels, num_classes=k, batch_size=256, augment="flip_translate",
                            shuffle=True, seed=seed, mixup_alpha=a.mixup, with_index=bool(a.elr))
        data, steps = endless(data)     # one iterator for all epochs, as the app trains
        t0 = time.perf_counter()
        model.fit(data, epochs=epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=2, shuffle=False)
        return time.perf_counter() - t0      # fit() ends by copying the EMA into the weights

    result = {"tag": a.tag, "options": {k_: v for k_, v in vars(a).items() if k_ not in ("tag", "out")},
              "fit_images": int(len(x)), "train_seconds": round(fit(x, y, a.epochs, callbacks, 0), 1)}
    result.update(val_images=int(len(y_val)), val_accuracy=val_accuracy(), test_accuracy=accuracy())
    if per_epoch:
        result["test_accuracy_per_epoch"] = per_epoch
    if a.ensemble > 1:
        probs, val_probs = [predict_probs(model, ds.x_test, tta="flip")], [predict_probs(model, x_val, tta="flip")]
        members, val_members = [result.pop("test_accuracy")], [result.pop("val_accuracy")]
        for seed in range(1, a.ensemble):
            keras.utils.set_random_seed(seed)
            model = new_model(x, lr, seed)
            result["train_seconds"] += round(fit(x, y, a.epochs, callbacks, seed), 1)
            probs.append(predict_probs(model, ds.x_test, tta="flip"))
            val_probs.append(predict_probs(model, x_val, tta="flip"))
            members.append(float((probs[-1].argmax(1) == y_test).mean()))
            val_members.append(float((val_probs[-1].argmax(1) == y_val).mean()))
        result["member_test_accuracy"], result["member_val_accuracy"] = members, val_members
        if a.save_test_probs:
            np.savez(a.save_test_probs, members=np.stack(probs), y_test=y_test, val_members=np.stack(val_probs),
                     y_val=y_val)
        result["val_accuracy"] = float((np.mean(val_probs, axis=0).argmax(1) == y_val).mean())
        result["test_accuracy"] = float((np.mean(probs, axis=0).argmax(1) == y_test).mean())
    if a.phase2:
        issues = find_label_issues(y, predict_probs(model, x, tta="flip"), detector="confident_learning")
        flag = issues.is_label_issue
        if a.phase2_action == "drop":
            x2, y2, t2 = x[~flag], y[~flag], None if truth is None else truth[~flag]
        else:
            x2, y2, t2 = x, np.where(flag, issues.proposed_label, y), truth
        result["phase1_test_accuracy"] = result.pop("test_accuracy")
        result["phase1_val_accuracy"] = result.pop("val_accuracy")
        result["flagged"] = int(flag.sum())
        if truth is not None:
            wrong = y != truth
            result.update(label_accuracy=float((~wrong).mean()),
                          flag_precision=float((flag & wrong).sum() / max(flag.sum(), 1)),
                          flag_recall=float((flag & wrong).sum() / max(wrong.sum(), 1)),
                          label_accuracy_phase2=float((y2 == t2).mean()))
        lr2, callbacks2 = _schedule(a, a.phase2, -(-len(x2) // 256))
        if a.phase2_reinit:     # a fresh network: nothing memorized in phase 1 carries over
            model = new_model(x2, lr2, 1)
        result["train_seconds"] += round(fit(x2, y2, a.phase2, callbacks2, 1), 1)
        result.update(val_accuracy=val_accuracy(), test_accuracy=accuracy())
    return result


def choose(rows: list, tags) -> dict:
    """Of ``tags``' runs (the last row of each tag in ``rows``), the one with the best noisy-validation
    accuracy; test accuracy plays no part. ValueError naming a tag without a run or without a validation
    accuracy (runs before 2026-12-07 recorded test accuracy only: rerun them)."""
    last = {r.get("tag"): r for r in rows}
    missing = [t for t in tags if t not in last]
    if missing:
        raise ValueError(f"no probe run tagged {', '.join(map(repr, missing))}; tags present: "
                         f"{', '.join(map(str, last)) or 'none'}")
    blind = [t for t in tags if last[t].get("val_accuracy") is None]
    if blind:
        raise ValueError(f"run {', '.join(map(repr, blind))} has no val_accuracy (recorded before the probe "
                         "reported validation): rerun it to choose on validation")
    return max((last[t] for t in tags), key=lambda r: r["val_accuracy"])


def run_choose(a) -> int:
    import json

    tags = [t.strip() for t in a.choose.split(",") if t.strip()]
    path = Path(a.out)
    if len(tags) < 2 or not path.is_file():
        print(f"error: --choose needs two tags or more and the results file {path} (have {tags}, "
              f"{'present' if path.is_file() else 'missing'})", file=sys.stderr)
        return 2
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    try:
        best = choose(rows, tags)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    last = {r["tag"]: r for r in rows}
    for t in tags:
        print(f"{t}: validation {100 * last[t]['val_accuracy']:.2f}%, test {100 * last[t]['test_accuracy']:.2f}%")
    print(f"chosen on validation: {best['tag']}")
    return 0


def main(argv=None) -> int:
    a = parse(argv)
    if a.choose:
        return run_choose(a)
    if not a.tag:
        print("error: --tag is required (the run's name in the results), or --choose TAG,TAG to compare runs",
              file=sys.stderr)
        return 2
    if a.per_step and a.phase2:
        print("error: --per-step and --phase2 cannot be combined (the second phase restarts a per-epoch "
              "schedule); drop one of them", file=sys.stderr)
        return 2
    if a.ensemble < 1:
        print(f"error: --ensemble {a.ensemble}: train at least one network (1 = no ensemble)", file=sys.stderr)
        return 2
    if a.ensemble > 1 and (a.phase2 or a.every_epoch):
        print("error: --ensemble cannot be combined with --phase2 or --every-epoch; drop one of them", file=sys.stderr)
        return 2
    if a.elr and a.phase2 and not a.phase2_reinit:
        print("error: --elr with --phase2 needs --phase2-reinit (ELR's per-image averages belong to the first "
              "phase's images)", file=sys.stderr)
        return 2
    result = run(a)
    common.print_and_append(a.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train: pick a preset, override any option, start a background run and watch it learn."""
from pathlib import Path

import streamlit as st

from noisycore import calibration, executors, jobs, runs
from noisycore.aum import COST_NOTE as AUM_COST_NOTE
from noisycore.catalog import (AUGMENT_HELP, CUTOUT_HELP, LOSS_DEFAULTS, LOSS_HELP, LOSS_RANGES, LOSS_SETUP_KEYS,
                               KEEP_HELP, MIXUP_HELP, MODEL_HELP, PRECISION_HELP, TTA_HELP)
from noisycore.config import (LR_SCHEDULES, METHOD_NAMES, OPTIMIZERS, PRECISIONS, PRESET_HELP, PRESETS,
                              EPOCHS_FOLLOW_SIZE, PRETRAINED_PRESET, DataConfig, NoiseConfig, TrainConfig,
                              default_preset, scratch_preset)
from noisycore.hardware import precision_note
from noisycore.catalog import METHOD_CHOICES, METHOD_DEFAULTS, METHOD_HELP, METHOD_PARAM_HELP
from noisycore.labelsets import truth_known_meta
from ui.common import (address_params, current_labels_path, current_user, follow_default, guard, param_notice,
                       param_notices)
from ui.train_options import forget_rate_option, forward_options
from ui.runs import (cluster_jobs, current_run, default_run, owner_words, run_panel, runs_root, saved_label_sets, set_current_run,
                     share_toggle, visible_runs)

DEFAULT_LABELS = "Built-in shapes, 40% symmetric noise"
TEST_SET_NOTE = (
    "The blog post stops training and picks its model by accuracy on the **test** set. That leaks the test set "
    "into training decisions, so its test accuracy is optimistic. Here validation always comes from the "
    "training data (a held-out share of the given labels, or a trusted subset with known true labels if you "
    "have one); the test (held-out) set is only ever reported.")

given_params = address_params()   # before the widgets: they drop invalid address values silently
st.title("Train")
st.caption("Train a classifier on the given labels (some of them may be wrong). "
           "Training runs in the background: you can leave this page, "
           "close the tab or start more runs; nothing is lost.")

# ---- Inputs: labels ----------------------------------------------------------------------------
with st.container(border=True):
    st.subheader("1. Labels to train on", anchor=False)
    sets = saved_label_sets()
    names = [DEFAULT_LABELS] + [s["name"] for s in sets]
    current = current_labels_path()
    # this session's label set ("Use these labels"), else the built-in demo: never someone else's upload
    start_index = next((i + 1 for i, s in enumerate(sets) if s["path"] == current), 0)
    words = {s["name"]: s["name"] + owner_words(s["path"]) for s in sets}
    choice = st.selectbox("Label set", names, index=start_index, format_func=lambda n: words.get(n, n),
                          help="Label sets are made on the Data & noise page with “Use these labels”. Yours come "
                               "first, then those shared with the class.")
    if choice == DEFAULT_LABELS:
        data_cfg, noise_cfg, labels_path = DataConfig(), NoiseConfig(model="symmetric", rate=0.4), None
        truth_known, num_images = True, None
    else:
        chosen = next(s for s in sets if s["name"] == choice)
        meta = chosen["meta"]
        data_cfg = guard(DataConfig.from_dict, meta.get("data_config") or {"source": meta["dataset"]["source"]})
        noise_cfg, labels_path = guard(NoiseConfig.from_dict, meta["config"]), chosen["path"]
        num_images = (meta.get("counts") or {}).get("labels")
        truth_known = truth_known_meta(meta) and meta.get("realized_rate") is not None
        rate = meta.get("realized_rate")
        if truth_known:
            st.caption(f"{meta['dataset'].get('name')}: {meta['counts']['labels']:,} labels, noise model "
                       f"{meta['config']['model']}, {rate:.1%} wrong")
        else:
            st.caption(f"{meta['dataset'].get('name')}: the labels of {meta['counts']['labels']:,} training images "
                       "(and of the held-out test images) as given; which of them are wrong is unknown (the Review "
                       "page judges every image after training)")
        share_toggle(chosen["path"], what="label set", key=f"share.labels.{choice}")

# ---- Inputs: preset and options -----------------------------------------------------------------
with st.container(border=True):
    st.subheader("2. Recipe", anchor=False)
    proposed = default_preset(data_cfg.source, num_images)
    follow_default("preset", proposed)   # the preset follows the label set unless the person chose one
    preset = st.segmented_control("Preset", list(PRESETS), default=proposed, required=True, key="preset",
                                  bind="query-params", help="A starting point; every option below overrides it.")
    param_notices({k: v for k, v in given_params.items() if k != "run"}, {"preset": (preset, ", ".join(PRESETS)),
                                                                         "run": (None, "a run id")})
    base = TrainConfig.from_preset(preset, num_images=num_images)
    st.caption(PRESET_HELP[preset] + (f" For these {num_images:,} training images: {base.epochs} epochs."
                                      if preset in EPOCHS_FOLLOW_SIZE and num_images else ""))
    if proposed == PRETRAINED_PRESET:
        st.caption(f"Proposed for your own photos: {PRETRAINED_PRESET} (a head on pretrained features ranks wrong "
                   f"labels better and trains in seconds). To train a network from scratch instead, choose "
                   f"{scratch_preset(data_cfg.source, num_images)}.")
    # widget keys per preset (and per label-set size for the small preset, whose epochs follow it), so
    # switching either resets the options to the preset's values for these images
    k = f"opt.{preset}." + (f"n{num_images}." if preset in EPOCHS_FOLLOW_SIZE and num_images else "")

    with st.expander("Model and regularization", expanded=False):
        c = st.columns(4)
        model = c[0].selectbox("Model", list(MODEL_HELP), index=list(MODEL_HELP).index(base.model), key=k + "model",
                               help=" ".join(f"{n}: {h}" for n, h in MODEL_HELP.items()))
        dropout = c[1].number_input("Dropout scale", 0.0, 2.0, base.dropout, 0.25, key=k + "dropout",
                                    help="Multiplies the model's dropout rates; 0 turns dropout off.")
        wd = c[2].number_input("Weight decay", 0.0, 0.1, base.weight_decay, 1e-4, format="%.4f", key=k + "wd",
                               help="Penalty on large weights (L2); 5e-4 is common, 0 = off.")
        bn = c[3].toggle("Batch normalization", base.batchnorm, key=k + "bn",
                         help="Normalizes activations per batch: faster, steadier training.")
    with st.expander("Loss and method", expanded=True):
        c = st.columns(2)
        loss = c[0].selectbox("Loss", list(LOSS_HELP), index=list(LOSS_HELP).index(base.loss), key=k + "loss",
                              help="How wrong predictions are penalized; robust losses resist wrong labels.")
        c[0].caption(LOSS_HELP[loss])
        method = c[1].selectbox("Method", METHOD_NAMES, index=METHOD_NAMES.index(base.method), key=k + "method",
                                help="How the network(s) use the labels during training.")
        c[1].caption(METHOD_HELP[method])
        loss_params = {}
        for name, default in LOSS_DEFAULTS[loss].items():
            if name in LOSS_SETUP_KEYS.get(loss, ()) or default is None:  # forward: T is chosen below, not typed
                continue
            lo, hi = LOSS_RANGES[loss].get(name, (0.0, 100.0))
            value = base.loss_kwargs.get(name, default) if base.loss == loss else default
            loss_params[name] = c[0].number_input(f"{loss}: {name}", float(lo), float(hi), float(value),
                                                  key=k + f"loss.{loss}.{name}")
        if loss == "forward":
            loss_params = forward_options(c[0], key=k + "loss.forward")
        method_params = {}
        for name, default in METHOD_DEFAULTS[method].items():
            if default is None:
                continue
            value = base.method_kwargs.get(name, default) if base.method == method else default   # the preset's
            label, key, tip = f"{method}: {name}", k + f"m.{method}.{name}", METHOD_PARAM_HELP.get(method, {}).get(name)
            if isinstance(default, bool):
                method_params[name] = c[1].toggle(label, bool(value), key=key, help=tip)
            elif isinstance(default, str):
                choices = METHOD_CHOICES[method][name]
                method_params[name] = c[1].selectbox(label, choices, index=choices.index(value), key=key, help=tip)
            else:
                method_params[name] = c[1].number_input(label, value=value, key=key, help=tip)
        if method == "coteaching":
            method_params.update(forget_rate_option(c[1], key=k + "m.coteaching.forget_rate"))
    with st.expander("Optimization", expanded=False):
        c = st.columns(5)
        epochs = c[0].number_input("Epochs", 1, 1000, base.epochs, key=k + "epochs",
                                   help="Passes over the training images (the maximum, with early stopping).")
        batch = c[1].number_input("Batch size", 8, 4096, base.batch_size, key=k + "batch")
        opt = c[2].selectbox("Optimizer", OPTIMIZERS, index=OPTIMIZERS.index(base.optimizer), key=k + "opt")
        lr = c[3].number_input("Learning rate", 1e-6, 1.0, base.learning_rate, format="%.4f", key=k + "lr")
        sched = c[4].selectbox("LR schedule", LR_SCHEDULES, index=LR_SCHEDULES.index(base.lr_schedule),
                               key=k + "sched", help="plateau: halve when validation loss stalls; cosine and "
                               "onecycle: smooth decay; warmup_linear: rise, then fall linearly; constant: never changes.")
        ema = c[0].number_input("Weight averaging (EMA momentum, 0 = off)", 0.0, 0.9999, base.ema_momentum, 0.01,
                                format="%.3f", key=k + "ema", help="Evaluate and save a moving average of the "
                                "weights over the last steps (about 1 / (1 - momentum) of them): steadier models.")
    with st.expander("Augmentation", expanded=False):
        c = st.columns(3)
        augment = c[0].selectbox("Augmentation", list(AUGMENT_HELP), index=list(AUGMENT_HELP).index(base.augment),
                                 key=k + "aug", help=" ".join(f"{n}: {h}" for n, h in AUGMENT_HELP.items()))
        cutout = c[1].toggle("Cutout", base.cutout, key=k + "cutout", help=CUTOUT_HELP)
        mixup = c[2].number_input("Mixup alpha", 0.0, 10.0, base.mixup_alpha, 0.1, key=k + "mixup", help=MIXUP_HELP)
    with st.expander("Validation and early stopping", expanded=False):
        st.info(TEST_SET_NOTE, icon=":material/info:")
        c = st.columns(4)
        val = c[0].number_input("Validation share", 0.01, 0.5, base.val_fraction, 0.05, key=k + "val",
                                help="Share of the training images held out to choose the best epoch.")
        trusted = c[1].toggle("Trusted validation (true labels)", base.trusted_val, key=k + "trusted",
                              disabled=not truth_known, help="Score validation against the true labels, as if you "
                              "had a small hand-checked subset. Needs known true labels.")
        patience = c[2].number_input("Early stopping patience (0 = off)", 0, 1000, base.early_stopping_patience,
                                     key=k + "patience", help="Stop after this many epochs without a better "
                                     "validation accuracy, and keep the best model.")
        max_train = c[3].number_input("Max. training images (0 = all)", 0, 10**7, base.max_train or 0, 500,
                                      key=k + "max_train", help="A smaller stratified subset trains faster.")
        tta = c[0].selectbox("Test-time augmentation", list(TTA_HELP), index=list(TTA_HELP).index(base.tta),
                             key=k + "tta", help=" ".join(f"{n}: {h}" for n, h in TTA_HELP.items()))
        keep = c[1].selectbox("Model kept", list(KEEP_HELP), index=list(KEEP_HELP).index(base.keep), key=k + "keep",
                              help=" ".join(f"{n}: {h}" for n, h in KEEP_HELP.items()))
    with st.expander("Speed", expanded=False):
        mp = st.segmented_control("Precision", PRECISIONS, default=base.mixed_precision, required=True,
                                  key=k + "mp", help=PRECISION_HELP)
        seed = st.number_input("Seed", 0, 2**31 - 1, base.seed, key=k + "seed", help="Same seed, same run.")
        budget = 0.0
        if preset == "fast":
            budget = st.number_input("Time budget (minutes, 0 = the preset's epochs)", 0.0, 10_000.0, 0.0, 1.0,
                                     key=k + "budget", help="The best model in about this many minutes on this "
                                     "machine: the epochs and the learning-rate schedule follow from its measured "
                                     "seconds per epoch.")
            st.caption(guard(calibration.budget_note, budget, num_images=int(max_train) or num_images, val_fraction=val,
                             image_size=data_cfg.image_size))
    with st.expander("Label-issue detection", expanded=False):
        aum_samples = st.toggle("AUM threshold samples (one extra training run)", base.aum_threshold_samples,
                                key=k + "aum", help=AUM_COST_NOTE + ". The Review page's detector “AUM, the paper's "
                                "threshold” then uses it; “AUM, mean margin below 0” works on any run.")

config = guard(TrainConfig.from_preset, preset, data=data_cfg.to_dict(), noise=noise_cfg.to_dict(),
               labels_path=labels_path, model=model, dropout=dropout, weight_decay=wd, batchnorm=bn, loss=loss,
               loss_params=loss_params, method=method, method_params=method_params, epochs=int(epochs),
               batch_size=int(batch), optimizer=opt, learning_rate=lr, lr_schedule=sched, augment=augment,
               cutout=cutout, mixup_alpha=mixup, val_fraction=val, trusted_val=trusted and truth_known,
               early_stopping_patience=int(patience), max_train=int(max_train) or None, mixed_precision=mp,
               seed=int(seed), aum_threshold_samples=aum_samples, tta=tta, ema_momentum=float(ema), keep=keep,
               budget_minutes=float(budget) or None)

# ---- Action -------------------------------------------------------------------------------------
active = guard(jobs.active_runs, runs_root())
if active and executors.cluster_setting():
    st.caption(f"{len(active)} run(s) queued or training on the cluster; runs train side by side on its free CPUs.")
elif active:
    st.caption(f"{len(active)} run(s) queued or training; a new run waits its turn (one trains at a time).")
st.caption(guard(precision_note, config.mixed_precision))
if preset == "fast":
    st.caption(guard(calibration.describe))
if st.button("Start training", type="primary", icon=":material/play_arrow:"):
    run_dir = guard(lambda: executors.executor().start(config, root=runs_root(), owner=current_user(),
                                                       cpus=cluster_jobs()["cpus"]))
    set_current_run(run_dir)
    st.toast(f"Started {run_dir.name}")

# ---- Render: the current run, or any earlier one ----------------------------------------------------
st.subheader("3. Runs", anchor=False)
table = visible_runs(guard(runs.list_runs, runs_root()))   # this workspace's runs first, then shared ones
if table.empty:
    st.info("No runs yet. Press **Start training**: its curves appear here while it trains (the Quick demo on "
            "the built-in shapes takes about a minute on a laptop CPU).")
    st.stop()
ids = table["id"].tolist()
states = dict(zip(table["id"], table["state"]))
requested = given_params.get("run")
shown = default_run(ids, states, mine=Path(current_run() or "").name, requested=requested)
paths = dict(zip(table["id"], table["path"]))
pick = st.selectbox("Run", ids, index=ids.index(shown),
                    format_func=lambda i: f"{i} ({states[i]})" + owner_words(paths[i]))
if requested and requested not in ids:
    param_notice("run", requested, valid="no run of yours or shared with you has this id", used=pick)
st.query_params["run"] = pick   # a reload (a new session) shows this run again
share_toggle(paths[pick], what="run", key=f"share.run.{pick}")
run_panel(str(runs_root() / pick), key="train")

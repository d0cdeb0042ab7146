"""Curves & compare: what the noise did to a run, runs side by side, and noise-rate sweeps."""
from pathlib import Path

import streamlit as st

from noisycore import fanout, sweeps
from noisycore.catalog import LOSS_HELP, MODEL_HELP
from noisycore.config import METHOD_NAMES, PRESET_HELP, PRESETS, DataConfig, TrainConfig
from noisycore.datasets import cifar10_available
from noisycore.catalog import METHOD_HELP
from ui.common import address_params, guard, param_notices
from ui.curves import (compare_metrics, compare_panel, default_compare, evaluation_panel, live_curves, prediction_grid,
                       run_choices, sweep_panel)
from ui.runs import cluster_jobs, current_run, runs_root, set_current_run
from ui.teaching import compare_lesson, open_requested_view, preselect_pair, twin_button

RATE_CHOICES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]

given_params = address_params()   # before the widgets: they drop invalid address values silently
st.title("Curves & compare")
st.caption("See what wrong labels do to a network while it trains, compare recipes side by side, and sweep the "
           "noise rate to see which loss or method holds up. Runs still training update live.")
open_requested_view()   # "Same labels, pretrained features" opens the comparison
# Plain option names: a widget bound to the URL stores its shown text there (?view=Sweeps).
view = st.segmented_control("View", ["Run", "Compare", "Sweeps"], default="Run", required=True, key="view",
                            bind="query-params")
param_notices(given_params, {"view": (view, "Run, Compare, Sweeps")})

# ---- One run ------------------------------------------------------------------------------------
if view == "Run":
    choices = run_choices()
    if not choices:
        st.info("No runs yet. Start one on the **Train** page (the Quick demo takes a few minutes), "
                "or from a terminal with `noisycore train`.")
        st.stop()
    paths = list(choices)
    mine = current_run()
    pick = st.selectbox("Run", paths, index=paths.index(mine) if mine in paths else 0, format_func=choices.get,
                        key="run.pick")
    set_current_run(pick)
    live_curves(pick, key="run")
    twin_button(pick, paths=paths, key="run.twin", run_view=True)
    st.subheader("Evaluation", anchor=False)
    if not (Path(pick) / "predictions.npz").exists():
        st.info("The evaluation and the prediction grid appear when the run ends (or is stopped).")
        st.stop()
    evaluation_panel(pick)
    st.subheader("Predictions", anchor=False)
    st.caption("The best model's prediction for each image. On the training set, look for images whose given label "
               "is wrong but which the model still predicts correctly: it learned the class, not the wrong label.")
    prediction_grid(pick, key="grid")

# ---- Compare ------------------------------------------------------------------------------------
elif view == "Compare":
    choices = run_choices()
    if len(choices) < 1:
        st.info("No runs to compare yet. Train a few on the **Train** page or start a sweep.")
        st.stop()
    paths = list(choices)
    preselect_pair(paths)   # after the teaching button: the pair and its curve
    picked = st.multiselect("Runs", paths, default=None if "compare.runs" in st.session_state else
                            default_compare(paths, current=current_run()),
                            format_func=choices.get, key="compare.runs",
                            help="Pick any runs; their curves are overlaid. It opens with your run and the newest "
                                 "runs of the same dataset.")
    compare_lesson(picked, paths=paths)
    offered = compare_metrics(picked)
    metric = st.selectbox("Curve", list(offered), format_func=offered.get, key="compare.metric")
    if not picked:
        st.info("Pick at least one run.")
        st.stop()
    compare_panel(picked, metric=metric)

# ---- Sweeps -------------------------------------------------------------------------------------
else:
    with st.expander("Start a new sweep", expanded=False, icon=":material/add:"):
        st.caption("Trains one run per combination of noise rate, loss, method and seed, "
                   + ("each its own job on the cluster, side by side on its free CPUs. " if cluster_jobs()["cluster"]
                      else "one after another in the background (single runs you start meanwhile wait their turn). ")
                   + "Stopped sweeps can be resumed.")
        c = st.columns(3)
        source = c[0].selectbox("Dataset", ["builtin", "cifar10"], key="new.source",
                                format_func={"builtin": "Built-in shapes", "cifar10": "CIFAR-10"}.get)
        noise = c[1].selectbox("Noise model", sweeps.SWEEPABLE_NOISE, key="new.noise")
        model = c[2].selectbox("Model", list(MODEL_HELP), key="new.model", help=MODEL_HELP["compact_cnn"])
        rates = st.multiselect("Noise rates", RATE_CHOICES, default=[0.0, 0.2, 0.4, 0.6], key="new.rates",
                               format_func=lambda r: f"{r:.0%}")
        c = st.columns(2)
        losses = c[0].multiselect("Losses", list(LOSS_HELP), default=["ce", "gce"], key="new.losses",
                                  help=" ".join(f"{k}: {v}" for k, v in LOSS_HELP.items()))
        methods = c[1].multiselect("Methods", METHOD_NAMES, default=["standard"], key="new.methods",
                                   help=" ".join(f"{k}: {v}" for k, v in METHOD_HELP.items()))
        c = st.columns(4)
        preset = c[0].selectbox("Preset", list(PRESETS), key="new.preset", help=" ".join(PRESET_HELP.values()))
        epochs = c[1].number_input("Epochs", 1, 1000, 10, key="new.epochs")
        max_train = c[2].number_input("Max. training images", 20, 10**7, 1500, 500, key="new.max_train",
                                      help="A stratified subset per cell; small sweeps finish in minutes.")
        n_seeds = c[3].number_input("Seeds", 1, 10, 1, key="new.seeds", help="Repeats per cell (seeds 0, 1, …): "
                                    "the chart's band shows their spread.")
        name = st.text_input("Name", value=f"{noise}-{'-'.join(losses)}", key="new.name")
        n_cells = len(rates) * len(losses) * len(methods) * int(n_seeds)
        if source == "cifar10" and not cifar10_available():
            st.warning("CIFAR-10 is not on this computer; download it on the Data & noise page first.")
        if st.button(f"Start sweep ({n_cells} runs)", type="primary", icon=":material/play_arrow:",
                     disabled=n_cells == 0, key="new.start"):
            base = guard(TrainConfig.from_preset, preset, data=DataConfig(source=source).to_dict(), model=model,
                         epochs=int(epochs), max_train=int(max_train))
            spec = guard(sweeps.SweepSpec, base=base, noise=noise, rates=tuple(rates), losses=tuple(losses),
                         methods=tuple(methods), seeds=tuple(range(int(n_seeds))))
            out = guard(fanout.start_sweep, spec, root=runs_root(), name=name, **cluster_jobs())
            st.session_state["sweep.pick"] = str(out)
            st.toast(f"Started {out.name}")

    table = guard(sweeps.list_sweeps, runs_root())
    if table.empty:
        st.info("No sweeps yet. Start one above, or from a terminal: `noisycore sweep --noise symmetric "
                "--rates 0,0.2,0.4,0.6 --losses ce,gce --epochs 10 --max-train 1500 --out runs/sweep-demo`.")
        st.stop()
    labels = dict(zip(table["path"], [f"{n} ({s}, {d}/{t})" for n, s, d, t in
                                      zip(table["name"], table["state"], table["done"], table["total"])]))
    if st.session_state.get("sweep.pick") not in labels:
        st.session_state.pop("sweep.pick", None)
    pick = st.selectbox("Sweep", list(labels), format_func=labels.get, key="sweep.pick")
    sweep_panel(pick)

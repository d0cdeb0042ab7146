"""Data & noise: choose images, corrupt their labels in a well-defined way, and see exactly what changed."""

import streamlit as st

from noisycore import charts, workspaces
from noisycore.config import PRETRAINED_PRESET, DataConfig, NoiseConfig, NOISE_MODEL_NAMES, default_data_dir, default_preset
from noisycore.datasets import cifar10_available, download_cifar10, skipped_text
from noisycore.catalog import NOISE_HELP
from noisycore.labelsets import save_label_set
from noisycore.noise import class_counts, describe, flipped_examples, validate_matrix
from ui.common import (address_params, cached_dataset, cached_noise, current_user, guard, labels_root, param_notice,
                       param_notices, presenter_on, set_current_labels_path, show_chart, show_table, upscale)
from ui.runs import owner_words

SOURCES = {
    "builtin": "Built-in shapes (offline)",
    "cifar10": "CIFAR-10",
    "path": "Folder or CSV on this computer",
    "upload": "Upload a zip",
}
BIND = dict(bind="query-params")

given_params = address_params()   # before the widgets: they drop invalid address values silently
st.title("Data & noise")
st.caption("Pick a dataset, choose how its labels get corrupted, and see exactly which labels were flipped. "
           "The settings are in the page address, so you can share an exact setup.")

# ---- Inputs: dataset --------------------------------------------------------------------------
if given_params.get("dataset") in SOURCES and "dataset" not in st.session_state:   # ?dataset=cifar10: its short
    st.session_state["dataset"] = given_params["dataset"]                       # name (the CLI's) is valid too
with st.container(border=True):
    st.subheader("1. Images", anchor=False)
    kind = st.segmented_control("Dataset", list(SOURCES), format_func=SOURCES.get, default="builtin",
                                required=True, key="dataset", **BIND,
                                help="The built-in shapes need no download and train in a few minutes on a laptop.")
    source = "builtin"
    if kind == "cifar10":
        source = "cifar10"
        if not cifar10_available():
            st.info("CIFAR-10 is not on this computer yet. Download it once (163 MB), or use the built-in dataset, "
                    "or point the environment variable NOISYLAB_CIFAR10 at a local copy.")
            if st.button("Download CIFAR-10 (163 MB)", icon=":material/download:"):
                bar = st.progress(0.0, text="Downloading CIFAR-10…")
                guard(download_cifar10, progress=lambda done, total: bar.progress(
                    min(done / total, 1.0) if total else 0.0, text=f"Downloading CIFAR-10… {done / 1e6:.0f} MB"))
                st.rerun()
            st.stop()
    elif kind == "path":
        source = st.text_input("Path to an image folder (class sub-folders) or a CSV manifest (path,label)",
                               key="path", **BIND, placeholder="/home/me/photos or /home/me/labels.csv").strip()
        if not source:
            st.info("Enter a folder laid out as `<class>/<image>` (or `train/<class>/…` and `test/<class>/…`), "
                    "or a CSV file with columns `path,label` (paths relative to the CSV).")
            st.stop()
    elif kind == "upload":
        upload = st.file_uploader("A zip of an image folder (class sub-folders inside)", type=["zip"])
        earlier = guard(workspaces.uploads, default_data_dir() / "uploads", current_user())
        if upload is None and earlier:   # never opened by default: pick one of yours (or a shared one)
            again = st.selectbox("Or open an earlier upload", [None] + earlier, key="upload.earlier",
                                 format_func=lambda p: "(none)" if p is None else p.name + owner_words(p.parent))
            if again is not None:
                source = str(again)
        if upload is None and source == "builtin":
            st.info("Upload a .zip whose folders are the classes. It is unpacked safely into the app's data folder.")
            st.stop()
        if upload is not None:
            source = str(guard(workspaces.save_upload, upload.getvalue(), upload.name,
                               root=default_data_dir() / "uploads", owner=current_user()))

    own = kind in ("path", "upload")
    c1, c2, c3 = st.columns(3)
    size = c1.selectbox("Image size (pixels)", ["auto", 16, 24, 32, 48, 64, 96], key="size", **BIND,
                        help="Every image is resized to this square size. Auto: the most common size, at most 64.")
    max_train = c2.number_input("Max. training images (0 = all)", 0, 1_000_000, 0, step=1000, key="max_train", **BIND,
                                help="Train on a stratified subset to keep demos fast.")
    label_column = None
    if source.lower().endswith(".csv"):
        label_column = c3.text_input("Label column (CSV)", key="label_column", **BIND,
                                     help="The CSV column with the labels you were given (default: label).") or None
    skip = None
    if own:
        skip = c3.toggle("Skip unreadable images", value=not source.lower().endswith(".csv"), key="skip", **BIND,
                         help="On: files that are not readable images are left out and listed. Off: one "
                              "unreadable file stops the import.")

data_cfg = guard(DataConfig, source=source, image_size=None if size == "auto" else int(size),
                 max_train=int(max_train) or None, label_column=label_column, skip_unreadable=skip)
dataset = guard(cached_dataset, data_cfg.to_json())
names = list(dataset.class_names)
K = dataset.num_classes
held = "test" if dataset.truth_known else "held-out"
st.caption(f"**{dataset.name}**: {len(dataset.y_train):,} training and {len(dataset.y_test):,} {held} images of "
           f"{dataset.image_shape[0]}×{dataset.image_shape[1]} pixels, {K} classes: {', '.join(names)}.")
if skipped_text(dataset):
    st.warning(skipped_text(dataset), icon=":material/warning:")
if not dataset.truth_known:
    st.caption("These are your own labels: nobody knows yet which of them are wrong. Keep them as given (noise "
               "model none) to find the suspicious ones on the Review page, or inject noise to experiment.")

# ---- Inputs: noise ----------------------------------------------------------------------------
with st.container(border=True):
    st.subheader("2. Label noise", anchor=False)
    models = [m for m in NOISE_MODEL_NAMES if m != "human" or dataset.label_sets or source == "cifar10"
              or kind != "builtin"]
    c1, c2, c3 = st.columns([2, 2, 1])
    # plain names: a bound widget stores its shown text in the URL
    # the user's own images start from "none" (their labels as given): a widget key of its own, so that this
    # default is not overridden by the demo's "symmetric" (and the page shows what it uses)
    model = c1.selectbox("Noise model", models, index=models.index("none" if own else "symmetric"),
                         key="noise_own" if own else "noise", **BIND,
                         help="; ".join(f"{m}: {NOISE_HELP[m]}" for m in models))
    c1.caption(NOISE_HELP[model])
    rate = c2.slider("Noise rate", 0.0, 0.95, 0.4, step=0.01, key="rate", **BIND, format="%.2f",
                     disabled=model in ("none", "matrix", "human"),
                     help="Share of labels to corrupt (of each source class for asymmetric and pair).")
    seed = c3.number_input("Seed", 0, 2**31 - 1, 0, key="seed", **BIND, help="Same seed, same labels.")
    extra = {}
    if model == "symmetric":
        extra["per_example"] = st.toggle("Flip each label independently with probability = rate", key="per_example",
                                         **BIND, help="Off: exactly round(rate × N) labels are flipped.")
    elif model == "matrix":
        import pandas as pd  # the editor needs a frame; no math here

        st.markdown("Edit the noise matrix: row = true class, column = given class, each row sums to 1.")
        start = pd.DataFrame([[1.0 if i == j else 0.0 for j in range(K)] for i in range(K)], index=names, columns=names)
        edited = show_table(start, name="matrix", editor=True, key=f"matrix_{K}", width="stretch")
        extra["matrix"] = tuple(tuple(float(v) for v in row) for row in edited.to_numpy().tolist())
        guard(validate_matrix, extra["matrix"], K)
    elif model == "human":
        sets = sorted(dataset.label_sets)
        human_file = st.text_input("Human label file (CSV manifest or CIFAR-10_human.pt); empty = the dataset's own CSV",
                                   key="human_labels", **BIND).strip() or None
        choices = sets if human_file is None else ["aggre", "worst", "random1", "random2", "random3"]
        if human_file and human_file.lower().endswith(".csv"):
            choices = None
        if choices:
            label_set = st.selectbox("Label set", choices, key="label_set", **BIND)
        else:
            label_set = st.text_input("Label set (a column of the CSV)", key="label_set_text", **BIND)
        if not label_set:
            st.info("This dataset has no other label columns. Give a CSV manifest or a CIFAR-10N file above.")
            st.stop()
        extra.update(human_labels=human_file, label_set=label_set)

# the address holds the shown text ("CIFAR-10"); a link may also give the short name ("cifar10")
used_params = {"dataset": (kind, ", ".join(SOURCES.values()), SOURCES.get),
               "size": (size, "auto, 16, 24, 32, 48, 64, 96"),
               "max_train": (int(max_train), "whole numbers from 0 (all) to 1,000,000"),
               ("noise_own" if own else "noise"): (model, ", ".join(models)), "rate": (rate, "numbers from 0 to 0.95"),
               "seed": (int(seed), f"whole numbers from 0 to {2**31 - 1:,}")}
if model == "symmetric":
    used_params["per_example"] = (extra["per_example"], "true or false")
text_keys = (["path"] if kind == "path" else []) + (["label_column"] if source.lower().endswith(".csv") else []) \
    + (["human_labels", "label_set", "label_set_text"] if model == "human" else [])
used_params.update({k: (given_params.get(k, ""), "any text") for k in text_keys})   # free text: never invalid
if own and "noise" in given_params:   # a demo link's noise model: own images have their own setting
    param_notice("noise", given_params.pop("noise"), used=None,
                 valid="your own images start from their labels as given; to inject noise into them use "
                       f"noise_own (now {model})")
param_notices(given_params, used_params)
noise_cfg = guard(NoiseConfig, model=model, rate=rate if model not in ("none", "matrix", "human") else 0.0,
                  seed=int(seed), **extra)
noisy = guard(cached_noise, data_cfg.to_json(), noise_cfg.to_json())

# ---- Render ------------------------------------------------------------------------------------
st.subheader("3. What the noise did", anchor=False)
st.markdown(guard(describe, noise_cfg, K))
if noisy.realized_rate is None:
    st.warning("The true labels of this data are unknown, so nobody can say which labels are wrong yet. "
               "Train a model and use the Review page to find the suspicious ones.")
else:
    m1, m2, m3 = st.columns(3)
    m1.metric("Requested rate", f"{noise_cfg.rate:.0%}" if model not in ("none", "matrix", "human") else "—")
    m2.metric("Realized rate", f"{noisy.realized_rate:.2%}", help="Share of training labels that differ from the truth.")
    m3.metric("Labels changed", f"{int(noisy.is_noisy.sum()):,} of {len(noisy.labels):,}")

# the heatmap needs the wider column for its square cells and legend; in presenter mode (larger cells, a
# wider sidebar) not even that holds ten classes at 1280 px: one row each
c1, c2 = (st.container(), st.container()) if presenter_on() else st.columns([2, 3])
show_chart(charts.class_counts_chart(class_counts(noisy, names)), where=c1, width="stretch")
if noisy.realized_matrix is not None:
    show_chart(charts.noise_matrix_heatmap(noisy.realized_matrix, names), where=c2, width="content")

if noisy.is_noisy is not None and noisy.is_noisy.any():
    st.markdown("**Flipped examples** (true → given label)")
    f1, f2 = st.columns(2)
    true_pick = f1.selectbox("True class", ["any"] + names, key="flip_true")
    given_pick = f2.selectbox("Given class", ["any"] + names, key="flip_given")
    idx = flipped_examples(noisy, true_class=None if true_pick == "any" else names.index(true_pick),
                           given_class=None if given_pick == "any" else names.index(given_pick), limit=48)
    if len(idx) == 0:
        st.info("No flipped example for this pair of classes.")
    else:
        st.image([upscale(dataset.x_train[i]) for i in idx], width=96,
                 caption=[f"{names[noisy.true_labels[i]]} → {names[noisy.labels[i]]}" for i in idx])

# ---- Action: save the label set ---------------------------------------------------------------
with st.container(border=True):
    st.subheader("4. Use these labels", anchor=False)
    default_name = ((f"{current_user()}-" if current_user() else "") + f"{dataset.name}-{model}"   # a classmate's
                    + (f"-{round(noise_cfg.rate * 100)}" if noise_cfg.rate else "") + f"-s{seed}")   # name stays theirs
    name = st.text_input("Name of the label set", value=default_name,
                         help="Saved as labels.csv + noise.json; the Train page and the CLI can use it.")
    if st.button("Use these labels", type="primary", icon=":material/check:"):
        clean = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name.strip()) or default_name
        guard(workspaces.check_may_write, labels_root() / clean, current_user())   # not a classmate's set
        out = guard(save_label_set, labels_root() / clean, dataset, noisy, data_config=data_cfg)
        if current_user():   # the workspace's label set (the Train page lists it first; its owner can share it)
            guard(workspaces.write_owner, out, current_user())
        set_current_labels_path(str(out))
        st.success(f"Saved to `{out}`. The Train page will use this label set"
                   + (f" and propose the {PRETRAINED_PRESET} preset: a classifier on pretrained features of your photos "
                      "(computed once, offline); the from-scratch presets are one click away there."
                      if default_preset(data_cfg.source) == PRETRAINED_PRESET else "."))

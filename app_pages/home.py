"""Home: what the app is for and the loop it walks a user through."""
import streamlit as st

st.title("Noisy Label Lab")
st.markdown(
    "Real labelled data is noisy: annotators err, automatic labellers err, some images are ambiguous. "
    "This lab lets you **see what wrong labels do to a classifier, what helps against them, and fix them**."
)

STEPS = [
    ("app_pages/data.py", "1. Data & noise", ":material/shuffle:",
     "Load the built-in shapes, CIFAR-10 or your own images; corrupt a chosen share of labels "
     "(symmetric, pair, asymmetric, instance-dependent, your own matrix) or bring real human labels; "
     "see exactly which labels were flipped."),
    ("app_pages/train.py", "2. Train", ":material/model_training:",
     "Pick a preset (the Quick demo takes a few minutes on a CPU), a model, a robust loss (label smoothing, "
     "symmetric CE, GCE, bootstrapping, …) and a method (co-teaching, confidence weighting, label correction); "
     "watch the curves live while it trains in the background."),
    ("app_pages/curves.py", "3. Curves & compare", ":material/monitoring:",
     "See the memorization gap open as the network learns the wrong labels, the confusion matrix and the "
     "predictions image by image; overlay runs to compare losses and methods, and sweep the noise rate to see "
     "which recipe holds up."),
    ("app_pages/review.py", "4. Review", ":material/fact_check:",
     "Let the model point at the labels it believes are wrong (confident learning, margins, AUM, …; out-of-sample "
     "by cross-validation), see which detector finds which errors, fix them image by image with the keyboard, "
     "export the corrected labels and retrain on them."),
]
for path, title, icon, text in STEPS:
    with st.container(border=True):
        st.page_link(path, label=title, icon=icon)
        st.caption(text)

st.markdown(
    "**New here?** Open *Data & noise*, keep the built-in shapes, pick *symmetric* noise at 40% and look at the "
    "noise matrix and the flipped examples. Everything runs offline on a laptop CPU."
)

"""Train-page widgets for the choices that are more than a number (the forward loss's matrix,
co-teaching's forget rate)."""
from __future__ import annotations


from noisycore import runs
from noisycore.catalog import FORWARD_MATRIX_HELP, LOSS_DEFAULTS
from noisycore.catalog import FORGET_RATE_SOURCES
from ui.runs import runs_root

WARM_UP = "a warm-up with plain cross-entropy in this run"


def forward_options(container, *, key: str) -> dict:
    """The forward loss's loss_params: matrix known | estimated, and for estimated the source of the
    predictions (a finished run, or this run's own CE warm-up of warmup_epochs)."""
    matrix = container.radio("Noise matrix T", list(FORWARD_MATRIX_HELP), key=key + ".matrix", horizontal=True,
                             help=" ".join(FORWARD_MATRIX_HELP.values()))
    container.caption(FORWARD_MATRIX_HELP[matrix])
    if matrix == "known":
        return {"matrix": "known"}
    table = runs.list_runs(runs_root())
    finished = table[table["state"] == "finished"]["id"].tolist() if not table.empty else []
    source = container.selectbox("Estimate T from the predictions of", [WARM_UP] + finished, key=key + ".from",
                                 help="A finished run (its cross-validated predictions if it has them, else its "
                                      "own) or this run: CE for the warm-up epochs, then T is estimated on the "
                                      "images it trains on and the forward loss takes over.")
    if source != WARM_UP:
        return {"matrix": "estimated", "matrix_from": str(runs_root() / source)}
    warmup = container.number_input("Warm-up epochs (plain CE) before T is estimated", 1, 1000,
                                    LOSS_DEFAULTS["forward"]["warmup_epochs"], key=key + ".warmup")
    return {"matrix": "estimated", "warmup_epochs": int(warmup)}


GIVEN = "a rate I give"
FORGET_LABELS = {"auto": "auto: declared, else estimated", "declared": "declared by the noise settings",
                 "estimated": "estimated (confident learning)", "oracle_uses_true_labels": "oracle (uses true labels)",
                 GIVEN: GIVEN}


def forget_rate_option(container, *, key: str) -> dict:
    """Co-teaching's forget_rate: a FORGET_RATE_SOURCES key, or a number the user gives."""
    choice = container.selectbox("coteaching: forget rate", list(FORGET_LABELS), format_func=FORGET_LABELS.get,
                                 key=key, help=" ".join(f"{FORGET_LABELS[k]}: {v}." for k, v in
                                                       FORGET_RATE_SOURCES.items()))
    if choice != GIVEN:
        return {} if choice == "auto" else {"forget_rate": choice}
    rate = container.number_input("Forget rate (share of each batch dropped)", 0.0, 0.9, 0.2, 0.05, key=key + ".value")
    return {"forget_rate": float(rate)}

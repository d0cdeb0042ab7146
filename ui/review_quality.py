"""The Review page's data-quality lists (issue 29): near-duplicates, outliers and poor images, each with
counts and a grid of thumbnails decided keep / exclude into the run's review store (so exports and the
retrain honour them). The lists are computed in the background (crossval's task "quality"); this only
renders them."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from noisycore import crossval, dataquality, review, triage
from noisycore.review import ReviewStore
from ui.common import guard
from ui.review import cv_progress
from ui.review_grid import STATUS, grid_decide, open_page, set_grid_page, target_words, tiles

LIST_KEY = "review.quality.list"
CHECK_WORDS = {"dark": "too dark", "bright": "too bright", "blurry": "blurry", "low_information": "almost no information"}


@st.cache_data(max_entries=4, show_spinner=False)
def _lists(run_dir: str, stamp: float):
    return dataquality.quality_lists(run_dir), dataquality.read_meta(run_dir)


def quality_lists(run_dir: str) -> tuple:
    """({list name: DataFrame} or None, quality.json or None), cached until the lists are computed again."""
    meta = Path(run_dir) / dataquality.QUALITY_DIR / dataquality.META
    return guard(_lists, run_dir, meta.stat().st_mtime if meta.exists() else 0.0)


def quality_panel(run_dir: str, *, classes: list, store: ReviewStore, reviewer: str, title: str) -> None:
    """The section: a Find button and the background job's progress, then counts, the list picker and its grid."""
    with st.container(border=True):
        st.subheader(title, anchor=False)
        lists, meta = quality_lists(run_dir)
        if lists is None:
            st.caption("Beyond wrong labels: the same photo twice (worst when the copies carry different labels), "
                       "images unlike the rest, and images too dark, too bright, blurry or nearly empty. Found with "
                       "the features of a network pretrained on ImageNet (EfficientNet-Lite2, shipped with the app: "
                       "nothing is downloaded), computed once per set of images in the background.")
            if st.button("Find near-duplicates, outliers and poor images", key="review.quality.find",
                         icon=":material/image_search:", type="primary"):
                guard(crossval.start, run_dir, folds=0, quality=True)
            cv_progress(run_dir, tasks=("quality",), key="review.quality")
            return
        _counts(meta)
        name = st.segmented_control("List", list(dataquality.LISTS), default="near_duplicates", required=True,
                                    key=LIST_KEY, format_func=lambda k: f"{dataquality.LISTS[k]} "
                                                                        f"({meta['counts'][k]})")
        st.caption(dataquality.LIST_HELP[name] + " Keep leaves an image in the set with its label; exclude "
                   "leaves it out of exports and the retrain.")
        items = guard(review.review_queue, dataquality.flagged(lists, name), guard(store.latest),
                      class_names=classes, flagged_only=False)
        if items.empty:
            st.success(f"No {dataquality.LISTS[name].lower()} among the {meta['n']} images.",
                       icon=":material/check_circle:")
            return
        _grid(run_dir, name, items, classes=classes, store=store, reviewer=reviewer)


def _counts(meta: dict) -> None:
    counts, by_check = meta["counts"], meta.get("poor_by_check", {})
    m = st.columns(3)
    m[0].metric("Near-duplicates", counts["near_duplicates"], help=dataquality.LIST_HELP["near_duplicates"])
    groups = meta.get("duplicate_groups", 0)
    m[0].caption(f"{groups} group{'s' if groups != 1 else ''} of copies; {meta.get('duplicates_labels_differ', 0)} "
                 "images in groups whose labels differ")
    m[1].metric("Outliers", counts["outliers"], help=dataquality.LIST_HELP["outliers"])
    m[2].metric("Poor images", counts["image_quality"], help=dataquality.LIST_HELP["image_quality"])
    m[2].caption(" · ".join(f"{words} {by_check.get(c, 0)}" for c, words in CHECK_WORDS.items()))
    m[1].caption(f"Of {meta['n']} images; pretrained features of the "
                 f"{meta.get('pixels') or str(meta['size']) + ' px images'}.")


def _tile_text(name: str, row) -> str:
    if name == "near_duplicates":
        return f"group {int(row['group']) + 1} · **{row['given_label']}**" + (" · labels differ"
                                                                             if row["labels_differ"] else "")
    return f"**{row['given_label']}** · {row['reason']}"


def _grid(run_dir: str, name: str, items, *, classes: list, store: ReviewStore, reviewer: str) -> None:
    key = f"quality/{Path(run_dir).name}/{name}"
    number, page, selected, n_open = open_page(key, items)
    total_open = int((items["decision"] == triage.UNDECIDED).sum())
    st.caption(f"Page {number + 1} of {triage.page_count(len(items))} · {total_open} of {len(items)} open")
    tiles(run_dir, key, page, selected, prefix="review.quality.tile", shortcuts=False,   # the keys are the label review's
          help=lambda row: f"{row['id']}: {row['reason']}",
          captions=lambda row: [_tile_text(name, row), "open" if row["decision"] == triage.UNDECIDED else
                                STATUS[row["decision"]].format(row["final_label"])])
    target = target_words(selected, n_open)
    a = st.columns(2)
    args = (str(store.path), key, page)
    for col, decision, label, icon in ((a[0], "keep", f"Keep {target}", ":material/done:"),
                                       (a[1], "exclude", f"Exclude {target}", ":material/block:")):
        col.button(label, key=f"review.quality.{decision}", icon=icon, width="stretch",
                   type="primary" if decision == "exclude" else "secondary", disabled=not selected and not n_open,
                   on_click=grid_decide, args=(*args, decision, reviewer, classes), kwargs={"proposals": False})
    b = st.columns(2)
    b[0].button("Previous page", key="review.quality.prev", icon=":material/arrow_back:", width="stretch",
                disabled=number == 0, on_click=set_grid_page, args=(key, number - 1))
    b[1].button("Next page", key="review.quality.next", icon=":material/arrow_forward:", width="stretch",
                disabled=number >= triage.page_count(len(items)) - 1, on_click=set_grid_page, args=(key, number + 1))

"""The Review page's grid: a page of thumbnails of ONE given -> proposed pair, decided many at once.

Keys: 1-9 and 0 select / unselect a tile; A accepts the proposal and K keeps the given label for the
selected tiles, or for every open tile of the page when none is selected; Left / Right turn pages;
U undoes the latest action, a whole batch at once. A batch is one ReviewStore transaction written
before the page confirms it. When a batch leaves no open tile, the next page with open tiles opens.
"""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from noisycore import triage
from noisycore.errors import UserError
from noisycore.review import ReviewStore
from ui.review import CLASS_KEYS, NOTE_KEY, UNDONE_KEY, review_image, undo

GRID_KEY = "review.grid"           # dict run/detector/pair -> {"page": int|None, "selected": set, "advance": bool}
PER_ROW = 5
TILE_PX = 128
VERBS = {"accept": "Accepted the proposal for", "keep": "Kept the given label of", "exclude": "Excluded"}
STATUS = {"unreviewed": "open", "accept": "accepted: {}", "keep": "kept: {}", "relabel": "relabelled: {}",
          "exclude": "excluded"}


def grid_state(key: str) -> dict:
    """{"page": int or None (None: the first page with an open item), "selected": set, "advance": bool}."""
    return st.session_state.setdefault(GRID_KEY, {}).setdefault(
        key, {"page": None, "selected": set(), "advance": False})


def grid_page_number(key: str, items) -> int:
    """The page to show: the chosen one; the first open one on a first visit, after an undo of one of
    these items, or when a batch decided every tile of the page."""
    state = grid_state(key)
    undone = set(st.session_state.pop(UNDONE_KEY, []) or [])
    hit = [i for i, item in enumerate(items["id"]) if item in undone]
    if hit:
        state.update(page=hit[0] // triage.PAGE_SIZE, selected=set(), advance=False)
    elif state["page"] is None:
        state["page"] = triage.first_open_page(items)
    elif state["advance"]:
        page = triage.grid_page(items, state["page"])
        if "decision" in page and (page["decision"] != triage.UNDECIDED).all():
            state["page"] = triage.first_open_page(items, start=state["page"] + 1)
        state["advance"] = False
    state["page"] = min(state["page"], triage.page_count(len(items)) - 1)
    return state["page"]


def toggle_tile(key: str, position: int) -> None:
    grid_state(key)["selected"] ^= {position}


def set_grid_page(key: str, page: int) -> None:
    grid_state(key).update(page=page, selected=set(), advance=False)


def grid_decide(store_path: str, key: str, page, decision: str, reviewer: str, class_names, *,
                proposals: bool = True) -> None:
    """Button callback (A / K in the grid): decide the selected tiles, or every open tile of the page,
    in ONE transaction (ReviewStore.record_batch) before the page confirms; then clear the selection.
    ``proposals`` False: tiles of a data-quality list (no proposed label; their ``score`` is recorded)."""
    state = grid_state(key)
    targets = triage.batch_targets(page, state["selected"])
    names = list(class_names)
    items = [{"item_id": row["id"], "index": int(row["index"]), "decision": decision, "new_label": None,
              "previous_label": names.index(row["given_label"]),
              "proposed_label": names.index(row["proposed_label"]) if proposals else None,
              "score": float(row["label_quality" if proposals else "score"])} for row in targets.to_dict("records")]
    if not items:
        st.session_state[NOTE_KEY] = ("info", "Every image on this page is decided: select some to change, "
                                              "or go to the next page.")
        return
    try:
        ReviewStore(store_path).record_batch(items, reviewer=reviewer)
    except UserError as e:
        st.session_state[NOTE_KEY] = ("error", str(e))
        return
    state.update(selected=set(), advance=True)
    st.session_state[NOTE_KEY] = ("info", f"{VERBS[decision]} {len(items)} image{'s' if len(items) != 1 else ''}; "
                                          "U undoes the whole batch.")


def open_page(key: str, items) -> tuple:
    """(page number, its rows, the selected positions on it, how many of its tiles are open)."""
    number = grid_page_number(key, items)
    page = triage.grid_page(items, number)
    selected = {i for i in grid_state(key)["selected"] if i < len(page)}
    return number, page, selected, int((page["decision"] == triage.UNDECIDED).sum())


def target_words(selected: set, n_open: int) -> str:
    """What a batch button decides: the selected tiles, else every open tile of the page."""
    return f"the {len(selected)} selected" if selected else \
        f"all {n_open} open on this page" if n_open != 1 else "the open one on this page"


def tiles(run_dir: str, key: str, page, selected: set, *, prefix: str, shortcuts: bool, help, captions) -> None:
    """A page of thumbnails, PER_ROW a row, each with a Select toggle (keys 1-9 and 0 with ``shortcuts``),
    ``help(row)`` on it and ``captions(row)`` below it."""
    for start in range(0, len(page), PER_ROW):
        cols = st.columns(PER_ROW)
        for i in range(start, min(start + PER_ROW, len(page))):
            row = page.iloc[i]
            with cols[i - start].container(border=True):
                st.image(review_image(run_dir, int(row["index"]), TILE_PX, square=True)[0], width=TILE_PX)
                on = i in selected
                st.button("Selected" if on else "Select", key=f"{prefix}{i}",
                          shortcut=CLASS_KEYS[i] if shortcuts else None,
                          type="primary" if on else "secondary", width="stretch",
                          icon=":material/check_box:" if on else ":material/check_box_outline_blank:",
                          on_click=toggle_tile, args=(key, i), help=help(row))
                for text in captions(row):
                    st.caption(text)


def grid_view(run_dir: str, queue, *, classes, store_path: str, reviewer: str, pos_key: str, detector: str) -> None:
    """Pick a pair (largest first), then decide its thumbnails a page at a time."""
    pairs = triage.pair_groups(queue)
    if pairs.empty:
        st.info("No label in this selection has a proposal that differs from its given label; use the one-by-one "
                "view, or raise N.")
        return
    counts = {f"{g} → {p}": (c, o) for g, p, c, o in pairs.itertuples(index=False)}
    label = st.selectbox("Given → proposed (largest first)", list(counts), key=f"review.pair.{Path(run_dir).name}",
                         format_func=lambda k: f"{k}   ({counts[k][0]} labels)",   # fixed: the label stays put
                         help="Every thumbnail of a page has this given label, and the model proposes the same class.")
    given, proposed = label.split(" → ")
    key = f"{Path(run_dir).name}/{detector}/{label}"
    items = triage.pair_items(queue, given, proposed)
    number, page, selected, n_open = open_page(key, items)
    st.caption(f"Page {number + 1} of {triage.page_count(len(items))} · {counts[label][1]} of {counts[label][0]} "
               f"open · keys: 1-9 and 0 select, A accept, K keep, ← → pages, U undo")
    tiles(run_dir, key, page, selected, prefix="review.tile", shortcuts=True,
          help=lambda row: f"{row['id']} (label quality {row['label_quality']:.3f}): select or unselect",
          captions=lambda row: [f"open · quality {row['label_quality']:.2f}" if row["decision"] == triage.UNDECIDED
                                else STATUS[row["decision"]].format(row["final_label"])])
    target = target_words(selected, n_open)
    a = st.columns(2)
    a[0].button(f"Accept {proposed} for {target}", key="review.grid.accept", shortcut="A", type="primary",
                icon=":material/check:", width="stretch", disabled=not selected and not n_open,
                on_click=grid_decide, args=(store_path, key, page, "accept", reviewer, classes))
    a[1].button(f"Keep {given} for {target}", key="review.grid.keep", shortcut="K", icon=":material/undo:",
                width="stretch", disabled=not selected and not n_open,
                on_click=grid_decide, args=(store_path, key, page, "keep", reviewer, classes))
    b = st.columns(3)
    b[0].button("Previous page", key="review.grid.prev", shortcut="Left", icon=":material/arrow_back:",
                width="stretch", disabled=number == 0, on_click=set_grid_page, args=(key, number - 1))
    b[1].button("Next page", key="review.grid.next", shortcut="Right", icon=":material/arrow_forward:",
                width="stretch", disabled=number >= triage.page_count(len(items)) - 1, on_click=set_grid_page,
                args=(key, number + 1))
    b[2].button("Undo", key="review.undo", shortcut="U", icon=":material/undo:", width="stretch", on_click=undo,
                args=(store_path, reviewer, pos_key), help="Cancels your latest action: a whole batch at once.")

"""Cached core calls, the error guard and small rendering helpers for the pages."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

import streamlit as st
from PIL import Image

from noisycore.config import DataConfig, NoiseConfig, default_data_dir
from noisycore.errors import UserError

T = TypeVar("T")

# Session keys, in one place so no page invents its own (GUIDE: no junk-drawer session_state).
LABELS_KEY = "lab.labels_path"      # str: folder of the label set the user chose with "Use these labels"


def guard(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run a core call; show a user error as a clear message and stop the page (never a traceback)."""
    try:
        return fn(*args, **kwargs)
    except UserError as e:
        st.error(str(e), icon=":material/error:")
        st.stop()


@st.cache_resource(max_entries=4, show_spinner="Loading images…")
def cached_dataset(data_json: str):
    """Datasets are shared by every session (read-only); at most four are kept in memory."""
    from noisycore.datasets import load_dataset

    return load_dataset(DataConfig.from_json(data_json))


@st.cache_resource(max_entries=32, show_spinner="Making noisy labels…")
def cached_noise(data_json: str, noise_json: str):
    from noisycore.noise import apply_noise

    return apply_noise(cached_dataset(data_json), NoiseConfig.from_json(noise_json))


def upscale(image, size: int = 96) -> Image.Image:
    """A crisp, pixelated enlargement of a small uint8 image (nearest neighbour)."""
    return Image.fromarray(image).resize((size, size), Image.NEAREST)


def labels_root() -> Path:
    return default_data_dir() / "labels"


def current_labels_path() -> str | None:
    return st.session_state.get(LABELS_KEY)


def set_current_labels_path(path: str) -> None:
    st.session_state[LABELS_KEY] = str(path)

"""Noisy Label Lab core: datasets, label noise, training, detection and review, without Streamlit."""

__version__ = "0.1.0"

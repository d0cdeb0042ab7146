"""Streamlit-side helpers shared by the pages: cached loaders, error guard, session state, images.

Kept apart from noisycore so the core stays importable and testable without Streamlit.
"""

"""Streamlit-side helpers shared by app.py and app_pages/: error guard, cached handles on core/, figures.

core/ never imports streamlit; everything that does and is used by more than one page lives here.
"""

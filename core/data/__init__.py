"""Datasets, in three modules that import downward only:

    datasets.py   the dataset type (Dataset / Concept / Category / ImageItem), reading it from disk,
                  and what both writers share (staging folder, publish, build lock, image normalisation)
    build.py      building the default set from the curated tables in assets/ and the emoji packages
    things.py     importing a user's collection in THINGS layout

Import the module you need (`from core.data import datasets`); this file re-exports nothing.
"""

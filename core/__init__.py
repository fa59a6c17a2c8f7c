"""TaxoLens core: the study pipeline, importable without Streamlit.

Pipeline, in file order: taxonomy → datasets → questions → conditions → models → features →
train → evaluate → predict → geometry → runs → jobs. `cli/` and the Streamlit pages sit on top.
"""

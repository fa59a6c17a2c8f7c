"""TaxoLens app, Home page: what this is, what is loaded, what is running, where to go next.

Start it with `make app` (core.app_runner: Streamlit plus a job worker). The other pages live in
pages/ (Streamlit's multipage convention); shared helpers in ui/.
"""
import streamlit as st

from ui import common, jobs, status

common.setup_page("Home", "🔭")

st.title("🔭 TaxoLens")
st.markdown(
    "TaxoLens joins a frozen image encoder to a frozen small language model through a trained "
    "projector and asks it yes/no questions about pictures (*Is there a squirrel in the image? "
    "Is there a mammal?*). By hiding some hypernym evidence during training, it measures whether the "
    "language model's taxonomic knowledge carries over to images it never saw described that way "
    "(Xu et al., ACL 2026).")

with common.guard("The first-run status"):
    jobs.first_run_panel()

with common.guard("The overview"):
    data_col, model_col = st.columns(2)
    with data_col:
        st.subheader("Dataset")
        status.dataset_summary()
    with model_col:
        st.subheader("Models")
        status.models_table()

with common.guard("The checkpoint list"):
    st.subheader("Checkpoints")
    status.checkpoints_table()

with common.guard("The job list"):
    st.subheader("Jobs")
    status.active_jobs()

st.subheader("Pages")
links = st.columns(5)
links[0].page_link("pages/1_Predict.py", label="Predict", icon="🔍",
                   help="Upload images or pick dataset images; see leaf guesses and hypernym chains.")
links[1].page_link("pages/2_Browse.py", label="Browse", icon="🖼️",
                   help="The dataset as a thumbnail grid with an evaluation run's answers.")
links[2].page_link("pages/3_Train.py", label="Train", icon="🏋️",
                   help="Queue training runs and sweeps; follow their progress.")
links[3].page_link("pages/4_Results.py", label="Results", icon="📊",
                   help="Compare runs: seen vs unseen F1, ablation curves, shuffles, baselines.")
links[4].page_link("pages/5_Geometry.py", label="Geometry", icon="🧭",
                   help="UMAP/PCA of embeddings and visual coherence per category.")

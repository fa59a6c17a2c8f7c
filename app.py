"""TaxoLens app: the entry point (`make app` runs it through ui.app_runner, beside a job worker).

It declares the pages with st.navigation (the Home page is `home()` below; the others live in
app_pages/) and runs the chosen one. Shared helpers are in ui/. The folder is deliberately not
called pages/: Streamlit treats a pages/ folder as the older multipage convention until a session
has run st.navigation once, so a browser opening e.g. /predict first on a fresh server would get
that page without this navigation, layout, and with a "Page not found" dialog.
"""
import streamlit as st

from ui import common, jobs, status

st.set_page_config(page_title="TaxoLens", page_icon=":material/account_tree:", layout="wide")


def home() -> None:
    st.title(":material/account_tree: TaxoLens")
    st.markdown(
        "TaxoLens joins a frozen image encoder to a frozen small language model through a trained "
        "projector and asks it yes/no questions about pictures (*Is there a squirrel in the image? "
        "Is there a mammal?*). By hiding some hypernym evidence during training, it measures whether "
        "the language model's taxonomic knowledge carries over to images it never saw described that "
        "way (Xu et al., ACL 2026).")

    with common.guard("The first-run status"):
        jobs.first_run_panel()

    with common.guard("The overview"):
        data_col, model_col = st.columns(2)
        with data_col:
            st.subheader("Dataset")
            status.dataset_summary()
            status.other_datasets()
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
    links = st.columns(len(PAGES) - 1)
    for col, (page, about) in zip(links, PAGES[1:]):
        col.page_link(page, help=about)


PAGES = [
    (st.Page(home, title="Home", icon=":material/home:", default=True), ""),
    (st.Page("app_pages/1_Predict.py", title="Predict", icon=":material/image_search:", url_path="predict"),
     "Upload images or pick dataset images; see leaf guesses and hypernym chains."),
    (st.Page("app_pages/2_Browse.py", title="Browse", icon=":material/photo_library:", url_path="browse"),
     "The dataset as a thumbnail grid with an evaluation run's answers."),
    (st.Page("app_pages/3_Train.py", title="Train", icon=":material/model_training:", url_path="train"),
     "Queue training runs and sweeps; follow their progress."),
    (st.Page("app_pages/4_Results.py", title="Results", icon=":material/bar_chart:", url_path="results"),
     "Compare runs: per-category macro-F1 on seen vs unseen pairs against chance, ablation curves, shuffles, baselines, what the LM alone knows."),
    (st.Page("app_pages/5_Geometry.py", title="Geometry", icon=":material/scatter_plot:", url_path="geometry"),
     "UMAP/PCA of embeddings and visual coherence per category."),
    (st.Page("app_pages/6_Data.py", title="Data", icon=":material/dataset:", url_path="data"),
     "The datasets here; import your own image collection."),
]

common.preload_predictor()     # background, once per server: the first upload need not wait for loading
st.navigation([page for page, _ in PAGES]).run()

"""Data page: the datasets on this machine, and your own image collection imported as one.

An import is a job (kind "import", run by the worker `make app` starts), the same as `taxolens data
import`: the folder and the CSV named in the form are read on this machine (the app serves
127.0.0.1 only). Everything but the images is checked when the form is sent; the job then reads and
normalises every image and keeps the dataset only when no problem was found, listing all of them
otherwise.
"""
from collections import Counter

import streamlit as st

from ui import common, jobs, status

LAYOUT = """Put one folder per concept under an image folder, and list the concepts in a CSV:

```
object_images/                 categories.csv
  aardvark/ 01.jpg 02.png …      concept,categories,synset
  apple/ …                       aardvark,animal,aardvark.n.01
  bat2/ …                        apple,food;fruit,apple.n.01
                                 bat2,animal;sports equipment,
```

`categories` are `;`-separated names (free text; they become the hypernym questions: *Is there an
animal in the image?*). `synset` is optional: a WordNet 3.0 noun synset gives Predict the concept's
hypernym chain. A trailing digit in a folder name is dropped from the question's wording (THINGS
homonyms: `bat2` is asked as "bat"). A `.tsv` file is read tab-separated."""
REPLACE_LABEL = "Replace the dataset of that name"


def app_wording(message: str) -> str:
    """An import refusal in the form's terms: core says the command line's flag (--replace)."""
    return message.replace("replace it with --replace", f"tick *{REPLACE_LABEL}*")


def datasets_table(names: list[str]) -> None:
    from core.data.datasets import DatasetError

    rows = []
    for name in names:
        try:
            s = common.dataset(name).summary()
        except DatasetError as exc:
            rows.append({"dataset": name, "source": f"unreadable: {exc}"})
            continue
        rows.append({"dataset": name, "concepts": s["concepts"], "categories": s["categories"],
                     "images": s["images"], "styles": len(s["styles"]), "source": s["source"]})
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={"source": st.column_config.TextColumn("source", width="large")})


def study_hint(name: str, images: Counter) -> str:
    """How to run the study on this dataset, and the paper's split where the collection is its size."""
    from core.config import PAPER_SPLIT_IMAGES, PAPER_SPLIT_PERCENT, SPLIT_PERCENT
    from core.jobs import sweeps

    mean = sum(images.values()) / max(1, len(images))
    split = (f" With {mean:.1f} images per concept on average, the paper's {PAPER_SPLIT_PERCENT} train/val/test split "
             f"(the Train form's *Split %*, `--split-percent {PAPER_SPLIT_PERCENT}`) is an option to the default "
             f"{SPLIT_PERCENT}." if mean >= PAPER_SPLIT_IMAGES else "")
    sweep = sweeps.sweep_name(sweeps.resolve("paper", sweeps.DEFAULT_SCALE, {"dataset": name}))
    return (f"**Run the study on it:** choose *{name}* as the Dataset on the Train page, for one training run or "
            f"the paper's sweep (its Sweep tab; from a shell `taxolens sweep submit paper --dataset {name}`, "
            f"sweep `{sweep}`)." + split)


def dataset_detail(name: str) -> None:
    status.dataset_summary(name)
    ds = common.dataset(name)
    unconfirmed = (ds.info.get("import") or {}).get("unconfirmed_synsets") or []
    if unconfirmed:
        st.warning(f"For {len(unconfirmed)} concept(s) none of the categories is a WordNet hypernym of the "
                   f"synset given: " + "; ".join(f"{u['concept']} ({u['synset']} is a "
                                                 f"{', '.join(u['hypernyms'][:3]) or '?'})" for u in unconfirmed[:8])
                   + ". Check those synsets: a wrong one gives Predict a wrong chain.", icon=":material/warning:")
    few = (ds.info.get("import") or {}).get("few_images") or {}
    if few:
        from core.data.things import few_images_note
        st.warning(few_images_note(few), icon=":material/warning:")
    images = Counter(im.concept for im in ds.images)
    st.markdown(study_hint(name, images))
    with st.expander(f"All {len(ds.concepts)} concepts"):
        st.dataframe([{"concept": c.name, "asked as": c.label, "synset": c.synset or "",
                       "categories": ", ".join(ds.categories[k].label for k in c.categories),
                       "images": images[c.name]} for c in ds.concepts.values()],
                     hide_index=True, width="stretch")


def import_form(names: list[str]) -> None:
    st.markdown(LAYOUT)
    with st.form("import_form"):
        root = st.text_input("Image folder", placeholder="/path/to/object_images",
                             help="The folder that holds one sub-folder of images per concept, on this machine.")
        csv_path = st.text_input("Concept table (CSV)", placeholder="/path/to/categories.csv",
                                 help="Columns concept,categories[,synset]; one row per concept folder.")
        c1, c2 = st.columns(2)
        name = c1.text_input("Dataset name", placeholder="my_collection",
                             help="1-64 lowercase letters, digits, '_' or '-'.")
        style = c2.text_input("Style of the images", "photo", key="data_import_style",
                              help="How the pictures were made (photo, sketch, painting, ...): shown beside each "
                                   "image and in the dataset's summary.")
        replace = st.checkbox(REPLACE_LABEL,
                              help="Runs trained on the one replaced stay on disk, marked as trained on "
                                   "another version of the dataset; results leave them out.")
        sent = st.form_submit_button("Import", icon=":material/drive_folder_upload:")
    if not sent:
        return
    empty = [label for label, value in (("Image folder", root), ("Concept table (CSV)", csv_path),
                                        ("Dataset name", name)) if not value.strip()]
    if empty:       # said in the form's words; the job's check would name its spec's fields
        quoted = [f"“{label}”" for label in empty]
        listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"
        st.error(f"Not queued: fill in {listed}.", icon=":material/block:")
        return
    from core import jobs as jobs_api
    from core.config import ConfigError

    try:
        job_id = jobs_api.submit("import", {"root": root, "csv": csv_path, "name": name.strip(), "replace": replace,
                                            "style": style.strip()},
                                 store=common.store())
    except ConfigError as exc:          # JobSpecError: every problem found before reading images
        st.error(f"Not queued: {app_wording(str(exc))}", icon=":material/block:")
        return
    st.session_state["data_import_job"] = job_id
    st.success(f"Queued import job #{job_id}. Its progress is below; once it has succeeded, the Train "
               f"page's Dataset list offers **{name.strip()}** (a run needs a train, a val and a test image: "
               f"3 or more images in a concept), and Geometry its visual coherence.",
               icon=":material/schedule:")


@st.fragment(run_every=jobs.REFRESH_S)
def watch_import() -> None:
    """Reruns the page once the import queued here has finished, so the new dataset is listed. Its
    own guard: a fragment's rerun happens outside the page's."""
    job_id = st.session_state.get("data_import_job")
    if job_id is None:
        return
    with common.guard("Following the import job"):     # st.rerun passes through (a BaseException)
        try:
            job = common.store().get(job_id)
        except KeyError:                 # gone with its data folder (TAXOLENS_DATA changed): stop following
            del st.session_state["data_import_job"]
            return
        if job.done:
            del st.session_state["data_import_job"]
            if job.status == "succeeded":
                st.session_state["data_imported"] = job.spec["name"]
            else:              # failed (every problem listed) or cancelled: said above the form
                st.session_state["data_import_ended"] = (job.id, job.spec["name"], job.status, job.error or "")
            st.rerun(scope="app")


def main() -> None:
    from core.data.datasets import list_datasets

    st.title(":material/dataset: Data")
    imported = st.session_state.pop("data_imported", None)
    if imported:
        st.success(f"Imported **{imported}**: listed below, and offered on the Train page.", icon=":material/check_circle:")
    ended = st.session_state.pop("data_import_ended", None)
    if ended:
        job_id, name, status, error = ended
        from core.jobs import error_parts
        error = app_wording(error_parts(error)[0]) if error else ""     # its traceback: the job table
        st.error(f"Import job #{job_id} of **{name}** {status}; nothing was kept" + (f". {error}" if error else "."),
                 icon=":material/error:")
    names = list_datasets()
    if imported in names:
        st.session_state["data_dataset"] = imported        # show the new one (set before its selectbox)
    if names:
        datasets_table(names)
        chosen = st.selectbox("Dataset", names, key="data_dataset",
                              index=common.dataset_index(names))
        with common.guard(f"Dataset '{chosen}'"):   # a damaged one must not hide the import form below
            dataset_detail(chosen)
    else:
        st.info("No dataset yet: `make dataset` builds the default one (concepts), or import your own below.")
    st.subheader("Import your own collection")
    import_form(names)
    watch_import()
    st.subheader("Jobs")
    jobs.job_table()


with common.guard("The Data page"):
    main()

"""What has a checkpoint learned? Issue 11's closing-note numbers for one run, as a short markdown report.

    python -m bench.insight_report RUN [--out docs/insight-report.md]

Three parts, each with the existing core functions, sized to run on one CPU core in about 15 minutes:

(a) tree agreement with WordNet (core.clusters): category and concept trees from the encoder
    features, the projector outputs and the answer profiles, for the original / cross / within
    labelings -- cophenetic correlation with WordNet path distance and mean Fowlkes-Mallows at
    matched cuts, with the leaf-permutation null and the membership baseline. Answer profiles (one
    P(yes) per image and category question) are the slow part, so they are scored for a fixed random
    sample of the split's images (`--cluster-images`, seeded; default 128, about 4 minutes on one
    busy CPU core) and cached under the work folder; `--cluster-images 0` takes all 385 test images
    (about 12 minutes; what docs/insight-report.md was made with).
(b) held-out pictures (core.predict): emoji of things outside the run's vocabulary, rendered from the
    same npm emoji packages the dataset is built from (core.data.build.Sources) into
    <work>/heldout/, each asked for the closed-vocabulary prediction (best leaf and its WordNet
    chain) and the open-vocabulary chain (walk down WordNet from the root). Each chain is checked
    against the picture's true synset: the deepest node that is the synset or one of its hypernyms.
(c) logit lens / nearest tokens per category (core.lens.summarize) over every image of the run's
    dataset: share of images whose image token's nearest input tokens (or next tokens) include the
    concept's name or a hypernym, next to the chance row (another concept's words).

Nothing is written inside the run folder; raw results go to <work>/<run id>/ (default work folder
data/insight/), the report to --out.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from core import clusters, geometry, paths, rundata, runs, taxonomy

# (name, emoji short name in emoji-datasource, WordNet synset of what the picture shows)
HELDOUT = {
    "harp": ("harp", "harp.n.01"),
    "shovel": ("shovel", "shovel.n.01"),
    "coconut": ("coconut", "coconut.n.02"),
    "telescope": ("telescope", "telescope.n.01"),
    "microscope": ("microscope", "microscope.n.01"),
    "broom": ("broom", "broom.n.01"),
    "anchor": ("anchor", "anchor.n.01"),
}


def _rel(path) -> str:
    try:
        return str(Path(path).absolute().relative_to(paths.ROOT.absolute()))
    except ValueError:
        return str(path)


def _f(v, nd=3) -> str:
    return "–" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.{nd}f}"


# ------------------------------------------------------------------ (a) trees against WordNet

def tree_scores(predictor, run_dir: Path, work: Path, n_images: int, n_perm: int, seed: int) -> dict:
    from core.features import image_features
    from core.questions import question_text

    info, vlm = predictor.info, predictor.vlm
    data = rundata.prepare(info.config)
    ds = data.dataset
    images = clusters.images_of_split(data, "test")
    n_split = len(images)
    if n_images and n_images < len(images):
        keep = np.sort(np.random.default_rng(seed).choice(len(images), n_images, replace=False))
        images = [images[i] for i in keep]
    concepts_of = [im.concept for im in images]
    feats, _ = image_features(vlm, images)
    vectors = {"encoder": feats.float().mean(dim=1).numpy().astype(np.float64)}
    with torch.no_grad():
        vectors["projector"] = torch.cat([vlm.prefix(feats[s:s + 256]).float().mean(dim=1).cpu()
                                          for s in range(0, len(feats), 256)]).numpy().astype(np.float64)
    categories = sorted({k for c in ds.concepts.values() for k in c.categories})
    ids = [im.id for im in images]
    stamp = runs.checkpoint_stamp(run_dir)
    cache = work / f"profiles-test-{len(images)}-s{seed}.npz"
    profiles = None
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if str(z["stamp"]) == stamp and [str(i) for i in z["image_ids"]] == ids \
                and list(map(str, z["categories"])) == categories:
            profiles = np.asarray(z["p_yes"], dtype=np.float64)
            profile_seconds = float(z["seconds"]) if "seconds" in z.files else None
    cached = profiles is not None
    if profiles is None:
        t0 = time.perf_counter()
        texts = [question_text(ds.categories[k].label) for k in categories]
        rows = []
        for s in range(0, len(images), 32):
            f = feats[s:s + 32]
            rows += [a.p_yes.numpy() for a in vlm.score(f, [texts] * len(f))]
            print(f"  answer profiles {min(len(images), s + 32)}/{len(images)}", file=sys.stderr, flush=True)
        profiles = np.stack(rows).astype(np.float64)
        profile_seconds = time.perf_counter() - t0
        work.mkdir(parents=True, exist_ok=True)
        np.savez(cache, image_ids=np.array(ids), p_yes=profiles, categories=np.array(categories),
                 stamp=np.array(stamp), seconds=np.array(profile_seconds))
    vectors["answers"] = profiles
    labelings, _ = geometry.labelings(ds, info.config.seed)
    shown = {name: [lab.get(c, c) for c in concepts_of] for name, lab in labelings.items()}
    result = {"run_id": info.run_id, "condition": info.config.condition, "split": "test",
              "n_split_images": n_split, "n_images": len(images), "n_concepts": len(set(concepts_of)),
              "profiles_cached": cached, "profile_seconds": profile_seconds, "profile_sd": float(profiles.std(axis=0).mean()),
              "labelings": list(labelings), "levels": {}}
    # Leaves = the concepts (or their categories) the sampled images are SHOWN as under each labeling,
    # images grouped by that shown label: on the full split this is exactly what clusters.compute
    # does (every concept present under every labeling); on a sample, grouping by the true concepts
    # would leave most concept leaves of a shuffled labeling empty (their images were not drawn).
    for level in clusters.LEVELS:
        merged = None
        for name in labelings:
            r = clusters.level_result(ds, shown[name], vectors, {name: {}}, level,
                                      n_perm=n_perm, seed=info.config.seed)
            if merged is None:
                merged = {**r, "labelings": {}}
            r["labelings"].get(name, {}).update({"leaves": r["leaves"], "wordnet": r["wordnet"]})
            merged["labelings"].update(r["labelings"])
        result["levels"][level] = merged
    result["rows"] = clusters.score_table(result)
    clusters.write_result(result, work / "clusters")
    return result


# ------------------------------------------------------------------ (b) held-out pictures

def render_heldout(names: list[str], style: str, folder: Path, vocabulary) -> list[dict]:
    """Render each held-out emoji into folder/<name>-<style>.png (deterministic); refuse a name that
    is in the run's vocabulary (by concept name, label or synset)."""
    from core.data.build import Sources, emoji_key
    from core.data.datasets import normalize_image

    sources = Sources()
    by_short = {e["short_name"]: e for e in sources.emoji.values()}
    vocab_names = {c.name for c in vocabulary.concepts.values()} | {c.label for c in vocabulary.concepts.values()}
    vocab_synsets = {c.synset for c in vocabulary.concepts.values() if c.synset}
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        if name not in HELDOUT:
            raise SystemExit(f"unknown held-out picture {name!r}; known: {', '.join(HELDOUT)}")
        short, synset = HELDOUT[name]
        if name in vocab_names or synset in vocab_synsets:
            raise SystemExit(f"{name} ({synset}) is in the run's vocabulary, so it is not held out")
        entry = by_short.get(short)
        image = sources.render(style, entry["unified"]) if entry else None
        if image is None:
            raise SystemExit(f"style {style} does not draw the {short} emoji")
        path = folder / f"{name}-{style}.png"
        normalize_image(image).save(path)
        out.append({"name": name, "synset": synset, "emoji": emoji_key(entry["unified"]), "path": str(path),
                    "in_vocabulary_hypernyms": sorted(k for k, cat in vocabulary.categories.items()
                                                      if cat.synset and taxonomy.is_ancestor(cat.synset, synset))})
    return out


def correct_depth(chain_synsets: list[str], truth: str) -> tuple[int, str | None]:
    """(how many nodes of a root-first chain are the true synset or its hypernyms, before the first
    that is not; the deepest such node)."""
    ok = taxonomy.ancestors(truth) | {truth}
    n, last = 0, None
    for s in chain_synsets:
        if s not in ok:
            break
        n, last = n + 1, s
    return n, last


# the open walks asked of each held-out picture: (start synset, contrast with a blank image).
# The first is `taxolens predict --open`'s default; the second the most permissive one, from physical
# entity (pictures show physical things) with no blank-image contrast: any P(yes) >= threshold.
WALKS = (("entity.n.01", True), ("physical_entity.n.01", False))


def heldout_chains(predictor, pictures: list[dict], budget: int, threshold: float, beam: int) -> list[dict]:
    out = []
    for pic in pictures:
        t0 = time.perf_counter()
        pred = predictor.predict(pic["path"], top_k=5)
        t_closed = time.perf_counter() - t0
        truth = pic["synset"]
        true_chain = taxonomy.hypernym_chains(truth)[0]
        closed = [[(n.synset, n.label, n.p_yes) for n in ch] for ch in pred.chains]
        walks = []
        for start, contrast in WALKS:
            t0 = time.perf_counter()
            walk = predictor.open_chain(pic["path"], threshold=threshold, beam=beam, budget=budget,
                                        start=start, contrast=contrast)
            opened = [[(n.synset, n.label, n.p_yes) for n in ch] for ch in walk.chains]
            best_open = opened[0] if opened else []
            depth, deepest = correct_depth([s for s, _, _ in reversed(best_open)], truth)
            # P(yes) (and the blank image's) of the true chain's nodes that the walk asked about
            asked_true = [{"synset": s, "p_yes": walk.nodes[s].p_yes, "p_blank": walk.nodes[s].p_blank,
                           "confident": walk.nodes[s].confident}
                          for s in reversed(true_chain) if s in walk.nodes and walk.nodes[s].p_yes is not None]
            walks.append({"start": start, "contrast": contrast, "chains": opened, "questions": walk.questions,
                          "stopped": walk.stopped, "notes": walk.notes, "correct_depth": depth,
                          "correct_deepest": deepest, "best_depth": len(best_open), "true_chain_asked": asked_true,
                          "seconds": time.perf_counter() - t0})
        closed_depth, _ = correct_depth([s for s, _, _ in reversed(closed[0][:-1])] if closed else [], truth)
        out.append({**pic, "leaves": pred.leaves, "best": pred.best,
                    "closed_chain": closed[0] if closed else [], "closed_notes": pred.notes,
                    "closed_correct_depth": closed_depth, "walks": walks, "true_chain": true_chain,
                    "seconds_closed": t_closed})
    return out


# ------------------------------------------------------------------ the report

def write_report(out: Path, run_dir: Path, args, info, a: dict | None, b: list | None, c: dict | None,
                 seconds: dict, note: str | None) -> None:
    L = []
    L.append(f"# What the default checkpoint learned — run `{info.run_id}`\n")
    L.append(f"Generated by `python -m bench.insight_report {run_dir} --out {args.out}"
             + (f" --cluster-images {args.cluster_images}" if args.cluster_images != 128 else "")
             + f"` on {time.strftime('%Y-%m-%d %H:%M')} ({platform.machine()}, device {predictor_device}, "
             f"torch threads {torch.get_num_threads()}).\n")
    cfg = info.config
    L.append(f"Run: dataset `{cfg.dataset}`, encoder `{cfg.encoder}`, LM `{cfg.lm}` ({cfg.lm_init}), "
             f"projector `{cfg.projector}` × {cfg.image_tokens} token(s), condition `{cfg.condition}`, seed {cfg.seed}, "
             f"{cfg.epochs} epochs. Checkpoint stamp `{runs.checkpoint_stamp(run_dir)}`.\n")
    if note:
        L.append(f"> **Learning note (core.runs.learning_note):** {note}\n")
    L.append("| part | seconds |\n|---|---:|")
    for k, v in seconds.items():
        L.append(f"| {k} | {v:.0f} |")
    L.append("")

    if a is not None:
        L.append("## (a) Tree agreement with WordNet (core.clusters)\n")
        sample = ("all of them" if a["n_images"] == a["n_split_images"]
                  else f"a seeded random sample, seed {args.seed}")
        L.append(f"Test split: {a['n_images']} of {a['n_split_images']} images ({sample}; {a['n_concepts']} "
                 f"concepts, one image each), {args.permutations} leaf permutations for the null. Answer profiles "
                 + (f"read from the cache (scoring them took {_f(a['profile_seconds'], 0)} s when it was made)"
                    if a["profiles_cached"] else f"scored in this run ({a['profile_seconds']:.0f} s)")
                 + f"; their mean per-question sd over images is {a['profile_sd']:.3f}. "
                 "`coph` = Pearson correlation of the model tree's cophenetic distances with WordNet path "
                 "distances; `FM` = mean Fowlkes–Mallows over matched cuts; `null` = the same with the model "
                 "tree's leaves permuted (mean); `p` = share of permutations at least as high; `membership` = "
                 "random per-image vectors grouped the same way (what category overlap alone gives). Leaves "
                 "are the concepts (categories) the sampled images are *shown as* under each labeling, as in "
                 "`taxolens clusters` on the full split; the leaf count can therefore differ a little between "
                 "labelings of a sample.\n")
        for level in clusters.LEVELS:
            entry = a["levels"][level]
            L.append(f"### {level} leaves\n")
            L.append("| labeling | source | leaves | coph | null coph | p | FM | null FM |\n|---|---|---:|---:|---:|---:|---:|---:|")
            for lab, e in entry["labelings"].items():
                for source in ("encoder", "projector", "answers", "membership"):
                    s = e["scores"].get(source)
                    if s is None:
                        continue
                    null = s.get("null") or {}
                    L.append(f"| {lab} | {source} | {s.get('n_leaves')} | {_f(s.get('cophenetic'))} | {_f(null.get('cophenetic_mean'))} | "
                             f"{_f(null.get('cophenetic_p'))} | {_f(s.get('fm_mean'))} | {_f(null.get('fm_mean'))} |")
            L.append("")
        L.append("Under `within`, every category keeps exactly its images, so category-level trees equal the "
                 "original ones by construction; the shuffles are *labelings of this run's images*, not "
                 "checkpoints trained on shuffled labels (this run was trained on the original labels), so "
                 "the answer trees under cross / within ask whether the original checkpoint's answers follow "
                 "the shuffled grouping.\n")

    if b is not None:
        L.append("## (b) Held-out pictures: closed and open chains (core.predict)\n")
        L.append(f"Emoji outside the run's {len(predictor_vocab)} concepts, rendered in style `{args.style}` from "
                 f"the dataset's own emoji packages into `{_rel(args.work)}/heldout/`. Closed: the best of the run's "
                 f"leaves and its WordNet chain (P(yes) of each node). Open: walks down WordNet (threshold "
                 f"{args.open_threshold}, beam {args.open_beam}, budget {args.open_budget} questions), first with "
                 f"`taxolens predict --open`'s defaults (from entity, contrast with a blank image), then the most "
                 f"permissive one (from physical entity, no contrast). A chain is checked against the picture's "
                 f"true hypernym chain from the top: 'right for its top k levels'.\n")
        for r in b:
            L.append(f"### {r['name']} (`{r['synset']}`, emoji {r['emoji']})\n")
            L.append(f"True chain: {' → '.join(taxonomy.display_name(s) for s in r['true_chain'][:-1])}. "
                     f"Dataset categories above it: {', '.join(r['in_vocabulary_hypernyms']) or 'none'}.\n")
            leaves = ", ".join(f"{x['label']} {x['p_yes']:.2f}" for x in r["leaves"])
            L.append(f"- Closed top-5 leaves: {leaves}.")
            L.append("- Closed best-leaf chain: " + " → ".join(f"{lab} {p:.2f}" for _, lab, p in r["closed_chain"][:-1])
                     + (f" ({'; '.join(r['closed_notes'])})" if r["closed_notes"] else ""))
            L.append(f"  (top {r['closed_correct_depth']} of {len(r['closed_chain']) - 1} levels below entity on the "
                     f"picture's true chain)")
            for w in r["walks"]:
                how = (f"from {taxonomy.display_name(w['start'])}, "
                       + ("contrast with a blank image" if w["contrast"] else "no blank-image contrast"))
                if w["chains"]:
                    for i, ch in enumerate(w["chains"]):
                        L.append(f"- Open chain {i + 1} ({how}): " + " → ".join(f"{lab} {p:.2f}" for _, lab, p in ch))
                else:
                    L.append(f"- Open chain ({how}): none confident.")
                verdict = ("—" if not w["best_depth"] else "right all the way down"
                           if w["correct_depth"] == w["best_depth"]
                           else f"right for its top {w['correct_depth']} of {w['best_depth']} levels"
                           + (f" (down to {taxonomy.display_name(w['correct_deepest'])})" if w["correct_deepest"] else ""))
                L.append(f"  - {w['questions']} questions, {w['seconds']:.0f} s, stopped because {w['stopped']}; "
                         + (f"best chain {verdict}." if w["best_depth"] else "no chain.") + (f" Notes: {' '.join(w['notes'])}" if w["notes"] else ""))
                if w["true_chain_asked"]:
                    L.append("  - True-chain nodes it asked (P(yes) / blank image): "
                             + ", ".join(f"{taxonomy.display_name(x['synset'])} {x['p_yes']:.2f}/"
                                         f"{_f(x['p_blank'], 2)}{'' if x['confident'] else ' (not confident)'}"
                                         for x in w["true_chain_asked"]))
            L.append(f"- Closed prediction: {r['seconds_closed']:.0f} s.\n")

    if c is not None:
        L.append("## (c) Nearest tokens and logit lens per category (core.lens.summarize)\n")
        L.append(f"All {c['n_images']} images of the run's dataset, top {c['top']} tokens. Image-token norm "
                 f"{c['image_token_norm']:.2f} vs mean LM token-embedding norm {c['token_norm']:.2f}. "
                 f"`near` = share of images whose image token's {c['top']} nearest input tokens (cosine) include the "
                 f"concept's name / a hypernym / either; `next` = the same for the top {c['top']} next tokens "
                 f"after the image (logit lens); `chance` = another concept's words.\n")
        common = ", ".join(f"`{x['shown']}` {x['share']:.0%}" for x in c["common"])
        L.append(f"Most common nearest tokens over all images: {common}.\n")
        L.append("| category | n | near name | near hyper | near any | near chance any | next name | next hyper | "
                 "next any | next chance any |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in c["categories"]:
            L.append(f"| {row['label']} | {row['n']} | {_f(row['nearest_true_name'], 2)} | "
                     f"{_f(row['nearest_true_hypernym'], 2)} | {_f(row['nearest_true_any'], 2)} | "
                     f"{_f(row['nearest_chance_any'], 2)} | {_f(row['next_true_name'], 2)} | "
                     f"{_f(row['next_true_hypernym'], 2)} | {_f(row['next_true_any'], 2)} | "
                     f"{_f(row['next_chance_any'], 2)} |")
        L.append("")
        ex = list(c["examples"].items())[:8]
        L.append("Examples (concept: its images' most frequent nearest tokens): "
                 + "; ".join(f"{k}: {' '.join(f'`{t}`' for t in v)}" for k, v in ex) + ".\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(L))


predictor_device = "cpu"
predictor_vocab: list[str] = []


def main(argv=None) -> int:
    global predictor_device, predictor_vocab
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="run id or run directory")
    ap.add_argument("--out", default="docs/insight-report.md")
    ap.add_argument("--work", default=str(paths.ROOT / "data" / "insight"),
                    help="folder for held-out images and raw results (default data/insight)")
    ap.add_argument("--parts", default="a,b,c", help="which parts to run (default a,b,c)")
    ap.add_argument("--cluster-images", type=int, default=128,
                    help="test images whose answer profiles are scored (0: all; default 128)")
    ap.add_argument("--permutations", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="seed of the image sample")
    ap.add_argument("--heldout", default="harp,shovel,coconut", help=f"from {', '.join(HELDOUT)}")
    ap.add_argument("--style", default="noto", help="emoji style of the held-out pictures")
    ap.add_argument("--open-threshold", type=float, default=0.5)
    ap.add_argument("--open-beam", type=int, default=2)
    ap.add_argument("--open-budget", type=int, default=300)
    ap.add_argument("--top", type=int, default=10, help="nearest / next tokens per image (lens)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))

    from core.predict import Predictor
    run_dir = runs.resolve_run_dir(args.run) if not Path(args.run).is_dir() else Path(args.run)
    seconds = {}
    t0 = time.perf_counter()
    predictor = Predictor.load(run_dir, device=args.device)
    predictor_device = str(predictor.device)
    predictor_vocab = predictor.concepts
    info = predictor.info
    work = Path(args.work) / info.run_id
    work.mkdir(parents=True, exist_ok=True)
    seconds["load checkpoint"] = time.perf_counter() - t0
    note = runs.learning_note(run_dir)

    a = b = c = None
    if "a" in parts:
        t0 = time.perf_counter()
        a = tree_scores(predictor, run_dir, work, args.cluster_images, args.permutations, args.seed)
        seconds["(a) trees"] = time.perf_counter() - t0
        print(f"(a) {seconds['(a) trees']:.0f} s", file=sys.stderr, flush=True)
    if "b" in parts:
        t0 = time.perf_counter()
        pics = render_heldout([n for n in args.heldout.split(",") if n], args.style,
                              Path(args.work) / "heldout", predictor.dataset)
        b = heldout_chains(predictor, pics, args.open_budget, args.open_threshold, args.open_beam)
        (work / "heldout.json").write_text(json.dumps(b, indent=1))
        seconds["(b) held-out chains"] = time.perf_counter() - t0
        print(f"(b) {seconds['(b) held-out chains']:.0f} s", file=sys.stderr, flush=True)
    if "c" in parts:
        from core import lens
        t0 = time.perf_counter()
        c = lens.summarize(run_dir, top=args.top, vlm=predictor.vlm, write=False)
        (work / "lens.json").write_text(json.dumps(c, indent=1))
        seconds["(c) lens"] = time.perf_counter() - t0
        print(f"(c) {seconds['(c) lens']:.0f} s", file=sys.stderr, flush=True)
    write_report(Path(args.out), run_dir, args, info, a, b, c, seconds, note)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

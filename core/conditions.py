"""Deprivation conditions: how hypernym evidence is taken away from the TRAINING questions.

    none              all questions
    random:<r>        the paper's ablation: for EACH category, max(1, int(n * r)) of its n member
                      concepts are sampled (none at r = 0); a sampled concept loses ALL its
                      hypernym questions (yes and no, about every category). A concept is removed
                      when any of its categories samples it, so the unseen share of hypernym
                      questions exceeds r. r = 1 leaves only leaf questions.
    pairs:<r>         (concept, category) pairs instead of concepts: for each category, a fraction r
                      of its members lose their "yes" questions about it and a fraction r of the
                      other concepts their "no" questions about it (>= 1 of each when r > 0)
    systematic:<N>    N whole categories, drawn by seed, lose every question about them
    systematic:a+b    the named categories lose every question about them
    cross             counterfactual labels: a derangement of ALL concepts (squirrel images are
                      called "cheese" and inherit cheese's categories)
    within            a derangement inside each group of concepts sharing the SAME category set
                      (singleton groups cannot move; they are left alone and reported)
    cross+<ablation>  a shuffle, then an ablation (random:<r>, pairs:<r>, systematic:...) applied
    within+<ablation> to the relabelled categories: a concept is a member of the categories of the
                      concept its images are labelled as

"Unseen" at evaluation = (true concept, category) pairs in `Deprivation.removed`. Removing the "no"
side too is what makes r = 1 / a systematic category truly evidence-free: "Is there a mammal?" -> no
on a car image is evidence about mammals. Under a shuffle alone nothing is removed (everything is
"seen"); evaluation then measures whether the model learnt the counterfactual labels.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import random
from dataclasses import dataclass, field

from core.base import ConfigError

KINDS = ("none", "random", "pairs", "systematic", "cross", "within")
SHUFFLES = ("cross", "within")
# The kinds the app's Train form offers (pairs: the former random, kept for older runs), with a line each.
OFFERED = {
    "none": "all hypernym questions kept",
    "random": "the paper's ablation: a fraction r of each category's concepts lose all their hypernym questions",
    "systematic": "drop whole categories",
    "cross": "shuffle concept labels across categories",
    "within": "shuffle concept labels within each category",
}
ABLATIONS = ("random", "pairs", "systematic")
FORMS = ("none, random:<r>, pairs:<r>, systematic:<N>, systematic:<cat>+<cat>, cross, within, "
         "or cross+/within+ followed by an ablation (e.g. cross+random:0.5)")


@dataclass
class Deprivation:
    labeling: dict[str, str]                  # concept -> concept it is labelled as
    removed: frozenset[tuple[str, str]]       # (TRUE concept, category): hypernym questions dropped from TRAIN
    report: dict = field(default_factory=dict)  # JSON-able: categories chosen, singletons, counts

    def keeps(self, question) -> bool:
        """Whether a training question survives: leaf questions always, hypernym questions unless
        their (concept, category) pair is removed."""
        return not self.is_unseen(question)

    def is_unseen(self, question) -> bool:
        return question.kind == "hypernym" and (question.concept, question.target) in self.removed


@dataclass(frozen=True)
class Condition:
    kind: str                                 # one of KINDS
    ratio: float | None = None                # random / pairs
    count: int | None = None                  # systematic:<N>
    categories: tuple[str, ...] = ()          # systematic:<a>+<b>
    shuffle: str | None = None                # cross / within before an ablation (combined specs)

    @property
    def spec(self) -> str:
        if self.kind in ("random", "pairs"):
            own = f"{self.kind}:{self.ratio:g}"
        elif self.kind == "systematic":
            own = f"systematic:{self.count}" if self.count is not None else \
                "systematic:" + "+".join(self.categories)
        else:
            own = self.kind
        return f"{self.shuffle}+{own}" if self.shuffle else own

    @property
    def shuffle_kind(self) -> str | None:
        """The shuffle this condition applies first (cross / within), if any."""
        return self.kind if self.kind in SHUFFLES else self.shuffle

    def check(self, ds) -> None:
        """Raise ConfigError (one line) if this condition cannot be applied to `ds`."""
        used = used_categories(ds)
        shuffle = self.shuffle_kind
        if shuffle == "cross" and len(ds.concepts) < 2:
            raise ConfigError("cross-category shuffle needs at least 2 concepts")
        if shuffle == "within" and not any(len(g) > 1 for g in _category_set_groups(ds).values()):
            raise ConfigError(f"within-category shuffle: no two concepts of {_described(ds)} share a "
                              f"category set")
        if self.kind in ("random", "pairs"):
            _check_ratio(self.ratio, self.kind)
        elif self.kind == "systematic":
            if self.count is not None:
                if self.count < 1:
                    raise ConfigError(f"systematic ablation needs N >= 1 categories, got {self.count}")
                if self.count > len(used):
                    raise ConfigError(f"systematic:{self.count} asks for more categories than dataset "
                                      f"'{ds.name}' has ({len(used)})")
            else:
                for name in self.categories:
                    if name not in used:
                        raise ConfigError(_unknown_category(name, ds, used))

    def apply(self, ds, seed: int) -> Deprivation:
        """The deprivation this condition makes of `ds`, a pure function of (ds, seed)."""
        self.check(ds)
        report: dict = {"condition": self.spec, "seed": seed}
        labeling = _shuffle(self.shuffle_kind, ds, seed, report)
        if self.kind in SHUFFLES or self.kind == "none":
            if self.kind in SHUFFLES:
                report["unseen"] = "not applicable: shuffles remove no questions"
            return Deprivation(labeling, frozenset(), report)
        # Membership under the labels the images carry (identity without a shuffle).
        member_of = {c: set(ds.concepts[labeling[c]].categories) for c in ds.concepts}
        if self.kind == "random":
            removed = _concept_ablation(ds, self.ratio, seed, member_of, report)
        elif self.kind == "pairs":
            removed = _pair_ablation(ds, self.ratio, seed, member_of, report)
        else:
            used = used_categories(ds)
            chosen = list(self.categories) if self.count is None else \
                sorted(random.Random(f"systematic:{seed}").sample(used, self.count))
            removed = frozenset((c, k) for k in chosen for c in ds.concepts)
            report["categories"] = chosen
        report["removed_pairs"] = len(removed)
        return Deprivation(labeling, removed, report)


def parse_condition(spec: str) -> Condition:
    """A condition spec (see the module docstring) -> Condition; ConfigError (one line) if malformed."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"condition must be one of {FORMS}")
    text = spec.strip()
    head, plus, rest = text.partition("+")
    if plus and head.strip().lower() in SHUFFLES:
        if not rest.strip():
            raise ConfigError(f"{text!r}: name an ablation after '+', e.g. {head.strip().lower()}+random:0.5")
        ablation = _parse_single(rest.strip(), text)
        if ablation.kind not in ABLATIONS:
            raise ConfigError(f"{text!r}: a shuffle combines with an ablation (random:<r>, pairs:<r> or "
                              f"systematic:...), not with {ablation.kind!r}")
        return dataclasses.replace(ablation, shuffle=head.strip().lower())
    return _parse_single(text, text)


def _parse_single(text: str, spec: str) -> Condition:
    kind, _, arg = text.partition(":")
    kind, arg = kind.strip().lower(), arg.strip()
    if kind in ("none", "cross", "within"):
        if arg:
            raise ConfigError(f"condition '{kind}' takes no argument, got {spec!r}")
        return Condition(kind)
    if kind in ("random", "pairs"):
        try:
            ratio = float(arg) + 0.0          # + 0.0: "-0" is 0, one setting with "0"
        except ValueError:
            if "+" in arg:                    # "random:0.5+cross"; "+0.5" is a number
                raise ConfigError(f"{spec!r}: put the shuffle first, e.g. cross+{kind}:0.5") from None
            raise ConfigError(f"{_NAMES[kind]} needs a ratio r in [0, 1], e.g. {kind}:0.5; got {spec!r}") \
                from None
        _check_ratio(ratio, kind)
        return Condition(kind, ratio=ratio)
    if kind == "systematic":
        if not arg:
            raise ConfigError("systematic ablation needs a count or categories, e.g. systematic:2 or "
                              "systematic:mammal+fish")
        if arg.lstrip("+-").isdigit():
            count = int(arg)
            if count < 1:
                raise ConfigError(f"systematic ablation needs N >= 1 categories, got {count}")
            return Condition("systematic", count=count)
        if _is_number(arg):                   # "systematic:1.5" is a count gone wrong, not a category
            raise ConfigError(f"systematic:<N> takes a whole number of categories, got {arg!r}")
        names = tuple(n.strip() for n in arg.split("+"))
        if any(not n for n in names):
            raise ConfigError(f"empty category name in {spec!r}")
        if len(set(names)) != len(names):
            raise ConfigError(f"category named twice in {spec!r}")
        return Condition("systematic", categories=names)
    raise ConfigError(f"unknown condition {spec!r}: use {FORMS}")


def canonical(spec: str) -> str:
    """The one spelling of a condition (`RANDOM:0.50` -> `random:0.5`), so runs of one condition
    group, order and resume as one; ConfigError (one line) if malformed."""
    return parse_condition(spec).spec


def legacy_spec(spec: str, report: dict | None) -> str:
    """The condition a run was really trained under. Before `random:<r>` became the paper's concept
    ablation it meant today's `pairs:<r>`; a checkpoint's recorded report tells the two apart (the
    old one counted removed "others" per category). Anything else is returned in its canonical
    spelling (unparseable specs unchanged)."""
    try:
        cond = parse_condition(spec)
    except ConfigError:
        return spec
    per_category = (report or {}).get("per_category") if isinstance(report, dict) else None
    if cond.kind == "random" and isinstance(per_category, dict) and any(
            isinstance(v, dict) and "others_removed" in v for v in per_category.values()):
        return dataclasses.replace(cond, kind="pairs").spec
    return cond.spec


# --- helpers -----------------------------------------------------------------------------------

_NAMES = {"random": "random ablation", "pairs": "pair ablation"}


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _check_ratio(ratio, kind: str = "random") -> None:
    if ratio is None or not math.isfinite(ratio) or not (0.0 <= ratio <= 1.0):
        raise ConfigError(f"{_NAMES.get(kind, 'ablation')} ratio r must be in [0, 1], got {ratio}")


def used_categories(ds) -> list[str]:
    """Categories with at least one concept (only those can be asked about or ablated)."""
    return sorted({k for c in ds.concepts.values() for k in c.categories})


def _unknown_category(name: str, ds, used: list[str]) -> str:
    near = difflib.get_close_matches(name, used, n=3)
    hint = f"; did you mean {', '.join(near)}?" if near else f"; known: {', '.join(used[:12])}" + \
        (", ..." if len(used) > 12 else "")
    return f"unknown category '{name}' in dataset '{ds.name}'{hint}"


def _category_set_groups(ds) -> dict[tuple[str, ...], list[str]]:
    groups: dict[tuple[str, ...], list[str]] = {}
    for name in sorted(ds.concepts):
        groups.setdefault(tuple(sorted(set(ds.concepts[name].categories))), []).append(name)
    return groups


def _derangement(items: list[str], rng: random.Random) -> dict[str, str]:
    """A uniformly random permutation without fixed points (rejection sampling: ~e tries)."""
    if len(items) < 2:
        raise ValueError("a derangement needs at least 2 items")
    while True:
        image = list(items)
        rng.shuffle(image)
        if all(a != b for a, b in zip(items, image)):
            return dict(zip(items, image))


def _shuffle(kind: str | None, ds, seed: int, report: dict) -> dict[str, str]:
    """The labeling of a shuffle (identity for None), with its facts added to `report`."""
    if kind is None:
        return {c: c for c in sorted(ds.concepts)}
    if kind == "cross":
        labeling = _derangement(sorted(ds.concepts), random.Random(f"cross:{seed}"))
        report["moved"] = len(labeling)
        report["same_category_set"] = sum(
            set(ds.concepts[a].categories) == set(ds.concepts[b].categories)
            for a, b in labeling.items())
        return labeling
    labeling = {c: c for c in sorted(ds.concepts)}
    singletons: list[str] = []
    groups = _category_set_groups(ds)
    for key in sorted(groups):
        members = groups[key]
        if len(members) == 1:
            singletons.extend(members)
            continue
        labeling.update(_derangement(members, random.Random(f"within:{seed}:{'+'.join(key)}")))
    report["groups"] = sum(len(g) > 1 for g in groups.values())
    report["moved"] = len(ds.concepts) - len(singletons)
    report["singletons"] = sorted(singletons)
    return labeling


def removal_summary(ds, spec: str, seed: int = 0) -> dict:
    """How much hypernym evidence a condition removes from `ds` under `seed`, before anything trains
    (the Train form shows it): {"concepts": concepts that lose at least one hypernym question, "of":
    the dataset's concepts}. random:r removes more than r of the concepts: every category samples
    max(1, int(n * r)) of its n members, so a category of one loses it at any r > 0, and a concept
    in several categories can be sampled by each."""
    removed = parse_condition(spec).apply(ds, seed).removed
    return {"concepts": len({c for c, _ in removed}), "of": len(ds.concepts)}


def sample_size(ratio: float, n: int) -> int:
    """The paper's count of a category's n members to sample at ratio r: max(1, int(n * r)),
    none at r = 0, with n * r taken exactly: the 1e-9 keeps floor() from truncating a product that
    float arithmetic puts just below a whole number (0.7 * 90 = 62.99999999999999 -> 63, not 62;
    0.29 * 100 -> 29)."""
    if ratio <= 0 or n == 0:
        return 0
    return min(n, max(1, math.floor(n * ratio + 1e-9)))


def _concept_ablation(ds, ratio: float, seed: int, member_of: dict[str, set[str]],
                      report: dict) -> frozenset[tuple[str, str]]:
    used = used_categories(ds)
    everyone = sorted(ds.concepts)
    sampled: set[str] = set()
    per_category: dict[str, dict[str, int]] = {}
    for cat in used:
        members = [c for c in everyone if cat in member_of[c]]
        chosen = random.Random(f"concepts:{seed}:{cat}").sample(members, sample_size(ratio, len(members)))
        sampled.update(chosen)
        per_category[cat] = {"members": len(members), "sampled": len(chosen), "concepts": sorted(chosen)}
    report["per_category"] = per_category
    report["removed_concepts"] = sorted(sampled)
    report["removed_concept_share"] = len(sampled) / len(everyone) if everyone else 0.0
    return frozenset((c, k) for c in sampled for k in used)


def _take(r: float, n: int) -> int:
    """How many of n pairs to remove at ratio r: rounded, at least 1 when r > 0 and n > 0."""
    if r <= 0 or n == 0:
        return 0
    return min(n, max(1, math.floor(r * n + 0.5)))


def _pair_ablation(ds, ratio: float, seed: int, member_of: dict[str, set[str]],
                   report: dict) -> frozenset[tuple[str, str]]:
    removed: set[tuple[str, str]] = set()
    per_category: dict[str, dict[str, int]] = {}
    everyone = sorted(ds.concepts)
    for cat in used_categories(ds):
        # the seed string of the former random:<r>, so runs trained under it rebuild exactly
        rng = random.Random(f"random:{seed}:{cat}")
        members = [c for c in everyone if cat in member_of[c]]
        others = [c for c in everyone if cat not in member_of[c]]
        gone_members = rng.sample(members, _take(ratio, len(members)))
        gone_others = rng.sample(others, _take(ratio, len(others)))
        removed.update((c, cat) for c in gone_members + gone_others)
        per_category[cat] = {"members": len(members), "members_removed": len(gone_members),
                             "others": len(others), "others_removed": len(gone_others)}
    report["per_category"] = per_category
    return frozenset(removed)


def _described(ds) -> str:
    """The dataset, or the subset of it a run takes ("the 20-concept subset of 'mycoll' (seed 0)"):
    a condition the whole dataset allows can fail on the concepts a subset keeps."""
    info = ds.info if isinstance(getattr(ds, "info", None), dict) else {}
    sub, whole = info.get("subset"), (info.get("counts") or {}).get("concepts")
    # a limit the dataset does not reach keeps every concept: that is the dataset, not a subset
    limit = (sub or {}).get("max_concepts")
    if limit is not None and len(ds.concepts) == limit and (whole is None or limit < whole):
        return f"the {len(ds.concepts)}-concept subset of '{ds.name}' (seed {sub.get('seed', 0)})"
    return f"'{ds.name}'"

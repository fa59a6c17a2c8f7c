"""Deprivation conditions: how hypernym evidence is taken away from the TRAINING questions.

    none              all questions
    random:<r>        for EACH category, a fraction r of its member concepts lose their "yes"
                      hypernym questions for it, and a fraction r of the other concepts lose their
                      "no" questions about it (>= 1 of each when r > 0). r = 1 removes every
                      hypernym question; leaf questions always stay.
    systematic:<N>    N whole categories, drawn by seed, lose every question about them
    systematic:a+b    the named categories lose every question about them
    cross             counterfactual labels: a derangement of ALL concepts (squirrel images are
                      called "cheese" and inherit cheese's categories)
    within            a derangement inside each group of concepts sharing the SAME category set
                      (singleton groups cannot move; they are left alone and reported)

"Unseen" at evaluation = (concept, category) pairs in `Deprivation.removed`. Removing the "no" side
too is what makes r = 1 / a systematic category truly evidence-free: "Is there a mammal?" -> no on
a car image is evidence about mammals. Under shuffles nothing is removed (everything is "seen");
evaluation then measures whether the model learnt the counterfactual labels.
"""
from __future__ import annotations

import difflib
import math
import random
from dataclasses import dataclass, field

from core.config import ConfigError

KINDS = ("none", "random", "systematic", "cross", "within")


@dataclass
class Deprivation:
    labeling: dict[str, str]                  # concept -> concept it is labelled as
    removed: frozenset[tuple[str, str]]       # (concept, category): hypernym questions dropped from TRAIN
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
    ratio: float | None = None                # random
    count: int | None = None                  # systematic:<N>
    categories: tuple[str, ...] = ()          # systematic:<a>+<b>

    @property
    def spec(self) -> str:
        if self.kind == "random":
            return f"random:{self.ratio:g}"
        if self.kind == "systematic":
            return f"systematic:{self.count}" if self.count is not None else \
                "systematic:" + "+".join(self.categories)
        return self.kind

    def check(self, ds) -> None:
        """Raise ConfigError (one line) if this condition cannot be applied to `ds`."""
        used = _used_categories(ds)
        if self.kind == "random":
            _check_ratio(self.ratio)
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
        elif self.kind == "cross":
            if len(ds.concepts) < 2:
                raise ConfigError("cross-category shuffle needs at least 2 concepts")
        elif self.kind == "within":
            if not any(len(g) > 1 for g in _category_set_groups(ds).values()):
                raise ConfigError(f"within-category shuffle: no two concepts of '{ds.name}' share a "
                                  f"category set")

    def apply(self, ds, seed: int) -> Deprivation:
        """The deprivation this condition makes of `ds`, a pure function of (ds, seed)."""
        self.check(ds)
        identity = {c: c for c in sorted(ds.concepts)}
        report: dict = {"condition": self.spec, "seed": seed}
        if self.kind == "none":
            return Deprivation(identity, frozenset(), report)
        if self.kind == "random":
            return _random_ablation(ds, self.ratio, seed, identity, report)
        if self.kind == "systematic":
            used = _used_categories(ds)
            chosen = list(self.categories) if self.count is None else \
                sorted(random.Random(f"systematic:{seed}").sample(used, self.count))
            removed = frozenset((c, k) for k in chosen for c in ds.concepts)
            report["categories"] = chosen
            report["removed_pairs"] = len(removed)
            return Deprivation(identity, removed, report)
        if self.kind == "cross":
            labeling = _derangement(sorted(ds.concepts), random.Random(f"cross:{seed}"))
            report["moved"] = len(labeling)
            report["same_category_set"] = sum(
                set(ds.concepts[a].categories) == set(ds.concepts[b].categories)
                for a, b in labeling.items())
            report["unseen"] = "not applicable: shuffles remove no questions"
            return Deprivation(labeling, frozenset(), report)
        # within
        labeling = dict(identity)
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
        report["unseen"] = "not applicable: shuffles remove no questions"
        return Deprivation(labeling, frozenset(), report)


def parse_condition(spec: str) -> Condition:
    """'none' | 'random:<r>' | 'systematic:<N>' | 'systematic:<cat>+<cat>' | 'cross' | 'within'."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("condition must be one of none, random:<r>, systematic:<N>, "
                          "systematic:<cat>+<cat>, cross, within")
    kind, _, arg = spec.strip().partition(":")
    kind, arg = kind.strip().lower(), arg.strip()
    if kind in ("none", "cross", "within"):
        if arg:
            raise ConfigError(f"condition '{kind}' takes no argument, got {spec!r}")
        return Condition(kind)
    if kind == "random":
        try:
            ratio = float(arg)
        except ValueError:
            raise ConfigError(f"random ablation needs a ratio r in [0, 1], e.g. random:0.5; got {spec!r}") \
                from None
        _check_ratio(ratio)
        return Condition("random", ratio=ratio)
    if kind == "systematic":
        if not arg:
            raise ConfigError("systematic ablation needs a count or categories, e.g. systematic:2 or "
                              "systematic:mammal+fish")
        if arg.lstrip("+-").isdigit():
            count = int(arg)
            if count < 1:
                raise ConfigError(f"systematic ablation needs N >= 1 categories, got {count}")
            return Condition("systematic", count=count)
        names = tuple(n.strip() for n in arg.split("+"))
        if any(not n for n in names):
            raise ConfigError(f"empty category name in {spec!r}")
        if len(set(names)) != len(names):
            raise ConfigError(f"category named twice in {spec!r}")
        return Condition("systematic", categories=names)
    raise ConfigError(f"unknown condition {spec!r}: use none, random:<r>, systematic:<N>, "
                      f"systematic:<cat>+<cat>, cross or within")


# --- helpers -----------------------------------------------------------------------------------

def _check_ratio(ratio) -> None:
    if ratio is None or not math.isfinite(ratio) or not (0.0 <= ratio <= 1.0):
        raise ConfigError(f"random ablation ratio r must be in [0, 1], got {ratio}")


def _used_categories(ds) -> list[str]:
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


def _take(r: float, n: int) -> int:
    """How many of n to remove at ratio r: rounded, at least 1 when r > 0 and n > 0."""
    if r <= 0 or n == 0:
        return 0
    return min(n, max(1, math.floor(r * n + 0.5)))


def _random_ablation(ds, ratio: float, seed: int, identity: dict, report: dict) -> Deprivation:
    removed: set[tuple[str, str]] = set()
    per_category: dict[str, dict[str, int]] = {}
    everyone = sorted(ds.concepts)
    for cat in _used_categories(ds):
        rng = random.Random(f"random:{seed}:{cat}")
        members = [c for c in everyone if cat in ds.concepts[c].categories]
        others = [c for c in everyone if cat not in ds.concepts[c].categories]
        gone_members = rng.sample(members, _take(ratio, len(members)))
        gone_others = rng.sample(others, _take(ratio, len(others)))
        removed.update((c, cat) for c in gone_members + gone_others)
        per_category[cat] = {"members": len(members), "members_removed": len(gone_members),
                             "others": len(others), "others_removed": len(gone_others)}
    report["per_category"] = per_category
    report["removed_pairs"] = len(removed)
    return Deprivation(identity, frozenset(removed), report)

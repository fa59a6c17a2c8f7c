"""A tiny in-memory Dataset for unit tests of questions, conditions, geometry and the CLI.

12 concepts in 7 categories, 5 images each. Concepts sharing a category set form the groups a
within-category shuffle permutes: {cat, dog, squirrel}, {crow, parrot}, {apple, cherry},
{bus, car}; salmon, shirt and violin are alone in theirs (singletons).
"""
from __future__ import annotations

from pathlib import Path

from core.data.datasets import Category, Concept, Dataset, ImageItem

CATEGORIES = {
    "animal": "animal", "mammal": "mammal", "bird": "bird", "fish": "fish", "fruit": "fruit",
    "vehicle": "vehicle", "clothing": "clothing", "musical_instrument": "musical instrument",
}
CONCEPTS = {
    "dog": ("animal", "mammal"), "cat": ("animal", "mammal"), "squirrel": ("animal", "mammal"),
    "crow": ("animal", "bird"), "parrot": ("animal", "bird"), "salmon": ("animal", "fish"),
    "apple": ("fruit",), "cherry": ("fruit",), "car": ("vehicle",), "bus": ("vehicle",),
    "shirt": ("clothing",), "violin": ("musical_instrument",),
}
SINGLETONS = {"salmon", "shirt", "violin"}


def tiny_dataset(images_per_concept: int = 5, name: str = "tiny") -> Dataset:
    root = Path("/nonexistent/tiny")
    categories = {k: Category(name=k, label=label, synset=None) for k, label in CATEGORIES.items()}
    concepts = {c: Concept(name=c, label=c, synset=None, categories=cats)
                for c, cats in CONCEPTS.items()}
    images = [ImageItem(id=f"{c}{i:02d}", concept=c, style=f"style{i}",
                        path=root / "images" / c / f"style{i}.png")
              for c in CONCEPTS for i in range(images_per_concept)]
    return Dataset(name=name, root=root, concepts=concepts, categories=categories, images=images)

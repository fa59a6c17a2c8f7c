"""bench.leaf_confusions' arithmetic on hand-made answers (the scoring is the VLM's own)."""
from bench import leaf_confusions as lc

CATS = {"cat": frozenset({"mammal", "pet"}), "tiger": frozenset({"mammal"}), "cup": frozenset({"container"}),
        "bowl": frozenset({"container"})}


def test_a_wrong_leaf_is_a_category_mate_when_it_shares_any_category():
    assert lc.kind_of("cat", "cat", CATS) == "true leaf"
    assert lc.kind_of("tiger", "cat", CATS) == "category-mate"
    assert lc.kind_of("cup", "cat", CATS) == "other wrong"
    assert lc.kind_of("bowl", "cup", CATS) == "category-mate"


def test_tally_gives_yes_shares_per_split_and_kind_for_the_vlm_and_the_probe():
    rows = [("test", "category-mate", True, False), ("test", "category-mate", True, True),
            ("test", "category-mate", False, False), ("test", "true leaf", True, True),
            ("train", "other wrong", False, True)]
    got = lc.tally(rows)
    mate = got["test"]["category-mate"]
    assert mate["asked"] == 3 and abs(mate["vlm"] - 2 / 3) < 1e-12 and abs(mate["probe"] - 1 / 3) < 1e-12
    assert got["test"]["true leaf"] == {"asked": 1, "vlm": 1.0, "probe": 1.0}
    assert got["train"] == {"other wrong": {"asked": 1, "vlm": 0.0, "probe": 1.0}}


def test_the_table_has_a_row_per_split_and_a_dash_for_kinds_not_asked():
    text = lc.table(lc.tally([("train", "true leaf", True, True)]))
    header, row = text.splitlines()
    assert header.startswith("split") and all(k in header for k in lc.KINDS)
    assert row.startswith("train") and "1.000 | 1.000 (1)" in row and row.rstrip().endswith("-")

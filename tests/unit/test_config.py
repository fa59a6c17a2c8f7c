"""Numeric options are finite and in range, checked the same at the CLI and at submit (issue 12,
case 4): NaN fails every comparison, so `value < 0` let `--weight-decay nan` through to a traceback
and an empty run folder, and the queue stored NaN for a job that failed later."""
from __future__ import annotations

import math

import pytest

from core import cli
from core.config import (BEFORE_FIELD, LEAF_STAGE, PAPER_SPLIT_PERCENT, SPLIT_PERCENT, ConfigError, TrainConfig,
                         baseline_identity, number_arg)
from core.jobs import JobStore, kinds, slurm
from cli_checks import tree

NOT_FINITE = [math.nan, math.inf, -math.inf]


FLOAT_FIELDS = {"lr": 2.0, "weight_decay": 20.0, "warmup": 0.9, "grad_clip": 1e7}   # field: too big


@pytest.mark.parametrize("field", FLOAT_FIELDS)
@pytest.mark.parametrize("value", NOT_FINITE + [True, "0.1", None, -0.5, "too big"])
def test_float_fields_must_be_finite_numbers_in_range(field, value):
    value = FLOAT_FIELDS[field] if value == "too big" else value
    with pytest.raises(ConfigError, match=f"{field} must be a number in"):
        TrainConfig(**{field: value}).validate()


def test_float_fields_accept_their_range():
    TrainConfig(lr=1, weight_decay=0).validate()
    TrainConfig(lr=1e-6, weight_decay=1.0).validate()
    with pytest.raises(ConfigError, match=r"lr must be a number in \(0, 1\]"):
        TrainConfig(lr=0.0).validate()                       # the open end stays open


@pytest.mark.parametrize("value", [1, "yes", None])
def test_fresh_negatives_must_be_a_bool(value):
    with pytest.raises(ConfigError, match="fresh_negatives must be true or false"):
        TrainConfig(fresh_negatives=value).validate()


def test_rank_mined_keeps_at_most_its_pool():
    TrainConfig(rank_mined=4, mine_pool=24).validate()
    with pytest.raises(ConfigError, match=r"rank_mined \(5\) keeps the top of mine_pool \(4\)"):
        TrainConfig(rank_mined=5, mine_pool=4).validate()
    with pytest.raises(ConfigError, match=r"mine_pool must be an integer in \[1, 1000\]"):
        TrainConfig(rank_mined=0, mine_pool=0).validate()


def test_rank_siblings_is_a_share_of_ranking_negatives():
    TrainConfig(rank_negatives=4, rank_siblings=0.5).validate()
    with pytest.raises(ConfigError, match=r"rank_siblings must be a number in \[0, 1\]"):
        TrainConfig(rank_negatives=4, rank_siblings=1.5).validate()
    with pytest.raises(ConfigError, match="rank_siblings needs rank_negatives > 0"):
        TrainConfig(rank_siblings=0.5).validate()


def test_split_leaf_only_moves_rank_soft_to_the_leaf_stage_only_when_the_first_stage_cannot_rank():
    asked = TrainConfig(projector_input="posterior", rank_soft=0.5)
    first, leaf_only = asked.split_leaf_only()
    assert first == TrainConfig(projector_input="posterior") and leaf_only == {"rank_soft": 0.5}
    first.validate()
    second = first.leaf_stage("run-1", **leaf_only)
    second.validate()
    assert second.rank_soft == 0.5 and second.rank_negatives == LEAF_STAGE["rank_negatives"]
    ranking = TrainConfig(projector_input="posterior", rank_negatives=2, rank_soft=0.5)
    assert ranking.split_leaf_only() == (ranking, {})          # it ranks itself: both stages keep it
    assert TrainConfig().split_leaf_only() == (TrainConfig(), {})


@pytest.mark.parametrize("argv", [
    ["train", "--weight-decay", "nan"], ["train", "--weight-decay", "inf"], ["train", "--lr", "nan"],
    ["baseline", "majority", "--weight-decay=-inf"],
    ["jobs", "submit", "train", "--weight-decay", "nan"], ["jobs", "submit", "train", "--lr", "inf"],
    ["jobs", "submit", "baseline", "--baseline", "majority", "--weight-decay", "nan"],
    ["jobs", "list", "--limit", "0"], ["jobs", "logs", "1", "--tail", "-3"],
    ["jobs", "worker", "--idle-exit", "nan"], ["jobs", "worker", "--concurrency", "0"],
    ["jobs", "submit", "train", "--slurm", "--cluster", "local", "--gpus", "100000"],
    ["predict", "x.png", "--top-k", "0"],
])
@pytest.mark.timeout(120)   # a regression of `jobs worker --idle-exit nan` would run a worker forever
def test_not_finite_or_out_of_range_numbers_are_refused_with_nothing_written(argv, tiny, capsys):
    before = tree(tiny)
    rc = cli.main(argv + (["--dataset", "tiny"] if argv[0] in ("train", "baseline") or
                          argv[:3] == ["jobs", "submit", "train"] else []))
    out, err = capsys.readouterr()
    assert rc == 2, (rc, err)
    assert len(err.strip().splitlines()) == 1 and "must be " in err and (" in [" in err or " in (" in err), err
    assert tree(tiny) == before                    # no run folder, no job store


def test_a_sweep_with_nan_in_its_base_is_refused(tiny):
    with pytest.raises(kinds.JobSpecError, match="weight_decay must be a number in"):
        kinds.validate("sweep", {"base": {"dataset": "tiny", "weight_decay": math.nan}, "conditions": ["none"]})


def test_the_store_never_holds_nan(tiny):
    store = JobStore()
    with pytest.raises(ValueError, match="JSON"):
        store.submit("train", {"config": {"lr": math.nan}})
    assert store.list() == []


def test_worker_and_slurm_numbers():
    from core.jobs import worker
    with pytest.raises(SystemExit):
        worker.main(["--cancel-grace", "inf"])
    with pytest.raises(ConfigError, match=r"gpus_per_node must be an integer in \[0, 64\]"):
        slurm.SlurmConfig(gpus_per_node=10**6).validate()
    assert number_arg(float, 0, 10)("2.5") == 2.5 and number_arg(int, 1, 3)("3") == 3


def test_parse_seeds():
    from core.config import parse_seeds
    assert parse_seeds("0, 1, 2") == [0, 1, 2] and parse_seeds("0-3; 1") == [0, 1, 2, 3]
    for bad in ("", "x", "4-2"):
        with pytest.raises(ConfigError, match="seeds"):
            parse_seeds(bad)


@pytest.mark.parametrize("text, canonical, fractions", [
    ("70/5/25", "70/5/25", (0.7, 0.05, 0.25)), ("70, 5, 25", "70/5/25", (0.7, 0.05, 0.25)),
    ("0.7/0.05/0.25", "70/5/25", (0.7, 0.05, 0.25)), ("80/10/10", "80/10/10", (0.8, 0.1, 0.1)),
    ("33.3/33.3/33.4", "33.3/33.3/33.4", (0.333, 0.333, 0.334)),
    # as precise as people write thirds: the one spelling parses again, to the same split
    ("33.33333/33.33333/33.33334", "33.3333/33.3333/33.3333", (1 / 3, 1 / 3, 1 / 3)),
    ("0.3333333/0.3333333/0.3333334", "33.3333/33.3333/33.3333", (1 / 3, 1 / 3, 1 / 3)),
    ("1e-7/50/50", "1e-07/50/50", (1e-9, 0.5, 0.5)),
])
def test_split_percent_has_one_spelling_per_split(text, canonical, fractions):
    """Spellings of one split are one config (and so one run, reused as such)."""
    cfg = TrainConfig(split_percent=text).validate()
    assert cfg.split_percent == canonical and cfg.split_fractions == pytest.approx(fractions)
    assert cfg == TrainConfig(split_percent=canonical) and TrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("text, message", [
    ("70/30/0", "each need a share above 0"), ("50/50/50", "sums to 150"), ("70/30", "percentages like"),
    ("a/b/c", "percentages like"), ("nan/50/50", "percentages like"), (70, "percentages like"),
])
def test_a_split_percent_that_is_not_a_split_is_refused_by_validate(text, message):
    cfg = TrainConfig(split_percent=text)                # constructing it never raises: validate() says why
    with pytest.raises(ConfigError, match=message):
        cfg.validate()


def test_the_split_is_part_of_what_a_baseline_and_a_second_stage_depend_on():
    from core import runs
    default, paper = TrainConfig(), TrainConfig(split_percent=PAPER_SPLIT_PERCENT)
    for kind in ("majority", "image-probe"):
        assert baseline_identity(kind, default.to_dict()) != baseline_identity(kind, paper.to_dict())
        old = {k: v for k, v in default.to_dict().items() if k != "split_percent"}   # stored before the field
        assert baseline_identity(kind, old) == baseline_identity(kind, default.to_dict())
        assert "split_percent" not in baseline_identity(kind, default.to_dict())   # its folder keeps its name
    assert "split_percent" in runs.INIT_MUST_MATCH
    old = {k: v for k, v in default.to_dict().items() if k != "split_percent"}
    assert TrainConfig.from_stored(old).split_percent == SPLIT_PERCENT == "60/20/20"   # what it did


def test_a_stored_config_without_a_later_field_keeps_what_that_run_did():
    old = TrainConfig().to_dict()
    for field in BEFORE_FIELD:
        del old[field]
    stored = TrainConfig.from_stored(old)
    assert stored.fresh_negatives is False and stored.precision == "fp32"      # fixed negatives, fp32
    assert stored.projector_tokens == 1 and stored.projector_hidden is None      # one token, the LM's width
    assert TrainConfig.from_dict(old) == TrainConfig()                          # a spec: today's defaults
    recorded = TrainConfig(fresh_negatives=True, precision="bf16").to_dict()
    assert TrainConfig.from_stored(recorded) == TrainConfig.from_dict(recorded)  # recorded values win


def test_an_old_run_dir_loads_with_its_own_negatives(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path))
    from core import runs

    run_dir = runs.create_run_dir(TrainConfig(dataset="tiny"))
    cfg = runs.read_json(run_dir / runs.CONFIG_JSON)
    del cfg["fresh_negatives"]
    runs.write_json(run_dir / runs.CONFIG_JSON, cfg)
    assert runs.load_run(run_dir).config.fresh_negatives is False


def test_a_linear_projector_drops_the_default_hidden_width_and_0_means_the_lms():
    assert TrainConfig(projector="linear").validate().projector_hidden is None
    assert TrainConfig(projector_hidden=0).projector_hidden is None
    assert TrainConfig().projector_hidden == 384                    # the gelu-mlp default stays
    with pytest.raises(ConfigError, match="needs a gelu-mlp projector"):
        TrainConfig(projector="linear", projector_hidden=200).validate()   # asked for explicitly

"""The scaling experiment in pieces: training stopped and resumed, cells kept and read back,
the command line that runs, exports and fits them."""

from __future__ import annotations

import dataclasses
import itertools
import math
import time

import numpy as np
import pytest
import torch

from hdbench.suite.experiments import cells as C
from hdbench.suite.experiments import models as M
from hdbench.suite.experiments import scaling as S
from hdbench.suite.experiments.data import Scenes


@pytest.fixture
def torch_backend(monkeypatch):
    monkeypatch.setenv("HDBENCH_BACKEND", "torch")


@pytest.fixture
def clock(monkeypatch):
    """time.monotonic() as 1, 2, 3, ...: one tick per call, so a deadline of k + 0.5 passes at
    the (k + 1)-th reading."""
    ticks = itertools.count(1)
    monkeypatch.setattr(time, "monotonic", lambda: float(next(ticks)))


def _same_model(a: M.Trained, b: M.Trained) -> None:
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert (a.train_accuracy, a.final_loss, a.train_samples) == (
        b.train_accuracy,
        b.final_loss,
        b.train_samples,
    )


@pytest.mark.parametrize(("model", "streamed"), [("linear", False), ("mlp", True), ("cnn", False)])
def test_training_stopped_twice_and_resumed_is_the_same_bit_for_bit(
    monkeypatch, clock, tmp_path, model, streamed
):
    if streamed:  # the training set rendered per minibatch, not once
        monkeypatch.setattr(M, "MATERIALISE_BYTES", 0)
    scenes = Scenes("upsampled", (8, 16), seed=1)
    training = M.Training(steps=12, batch=20)  # the last 8 steps' accuracy spans the stops
    whole = M.train(model, scenes, 16, "fewer", training=training, seed=3)
    ckpt = tmp_path / "cell.train.pt"
    for stop, steps_run in ((3, 3), (7, 4)):  # stopped before step 3, then before step 7
        deadline = time.monotonic() + steps_run + 0.5  # one clock reading a step
        with pytest.raises(M.DeadlineReached, match=f"before step {stop} of 12"):
            M.train(
                model,
                scenes,
                16,
                "fewer",
                training=training,
                seed=3,
                checkpoint=ckpt,
                deadline=deadline,
            )
        assert torch.load(ckpt, weights_only=True)["step"] == stop
    resumed = M.train(model, scenes, 16, "fewer", training=training, seed=3, checkpoint=ckpt)
    _same_model(resumed, whole)
    assert 0 < resumed.train_accuracy and resumed.seconds > 0
    # the finished state is kept too (no optimiser), and read back as the same model
    assert torch.load(ckpt, weights_only=True)["opt"] == {}
    again = M.train(
        model,
        scenes,
        16,
        "fewer",
        training=training,
        seed=3,
        checkpoint=ckpt,
        deadline=time.monotonic() - 1,
    )
    _same_model(again, whole)


def test_a_checkpoint_of_another_training_or_a_deadline_without_one_is_refused(tmp_path):
    scenes = Scenes("upsampled", (8,), seed=1)
    ckpt = tmp_path / "c.pt"
    M.train("linear", scenes, 8, "fewer", training=M.Training(steps=3, batch=8), checkpoint=ckpt)
    with pytest.raises(ValueError, match=r"train: expected a checkpoint of a 5-step run .* 3"):
        M.train(
            "linear", scenes, 8, "fewer", training=M.Training(steps=5, batch=8), checkpoint=ckpt
        )
    with pytest.raises(ValueError, match="train: expected a checkpoint file with a deadline"):
        M.train("linear", scenes, 8, "fewer", deadline=time.monotonic() + 60)


def _tiny(**changes) -> S.Config:
    base = S.Config(
        name="tiny",
        sides=(8, 16, 32),
        models=("linear", "mlp"),
        test_points=32,
        more_max_side=8,
        training=M.Training(steps=20, batch=32),
        families=("upsampled",),
        regimes=("fewer",),
        n_boot=100,
    )
    return dataclasses.replace(base, **changes)


def _assert_same_points(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        for k in ("l2", "l2_area", "linf", "m", "margin", "eps_m_n"):
            np.testing.assert_array_equal(getattr(b[key], k), getattr(a[key], k), err_msg=str(key))
        for k in ("clean_accuracy", "median_l2", "train_accuracy", "skipped"):
            x, y = getattr(a[key], k), getattr(b[key], k)
            assert x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y)), (key, k)


def test_cells_stopped_and_resumed_give_the_results_of_one_run(torch_backend, tmp_path):
    cfg = _tiny()
    one_run = S.run_cells(cfg)
    store = C.CellStore(tmp_path / "cells")
    # a deadline already past: training stops before its first step, state kept
    with pytest.raises(M.DeadlineReached, match="before step 0"):
        S.run_cells(cfg, store=store, deadline=time.monotonic() - 1)
    assert [p.name.split("-")[:4] for p in store.folder.glob("*.train.pt")] == [
        ["upsampled", "linear", "fewer", "8"]
    ]
    pieces = S.run_cells(cfg, store=store)
    _assert_same_points(one_run, pieces)
    assert not list(store.folder.glob("*.train.pt"))  # dropped with each stored cell
    assert len(list(store.folder.glob("*.json"))) == 6

    # read back, nothing is computed again, and the whole run's slopes are the same
    def no_training(*_args, **_kw):
        raise AssertionError("a stored cell was trained again")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(M, "train", no_training)
        read_back = S.run(cfg, store=store)
    _assert_same_points(one_run, read_back["points"])
    computed = S.run(cfg)
    assert read_back["slopes"] == computed["slopes"]
    assert (read_back["cells_read"], computed["cells_read"]) == (6, 0)
    assert read_back["points"][("upsampled", "mlp", "fewer", 16)].attack_s > 0


def test_an_attack_predicted_past_the_deadline_is_not_started(torch_backend, tmp_path, clock):
    cfg = _tiny(models=("mlp",), sides=(8, 16))
    store = C.CellStore(tmp_path)
    cell8, cell16 = ("upsampled", "mlp", "fewer", 8), ("upsampled", "mlp", "fewer", 16)
    # a stored side-8 cell whose attack took 100 s: side 16's is predicted at 400 s; the clock
    # reads once a training step (20 of them)
    made_up = {"clean_accuracy": 1.0, "attacked": 5, "attack_s": 100.0}
    store.store(cfg, cell8, "cpu", made_up)
    with pytest.raises(
        M.DeadlineReached,
        match=r"attack of upsampled/mlp/fewer at side 16 "
        r"\(about 400 s\) would end past",
    ):
        S.run_cells(cfg, store=store, deadline=time.monotonic() + 410)
    kept = store.checkpoint(cfg, cell16, "cpu")  # the trained model, for the next call
    assert torch.load(kept, weights_only=True)["step"] == 20
    # longer than all the time a call is given: it starts all the same, or it never would
    said: list[str] = []
    finished = S.run_cells(cfg, store=store, deadline=time.monotonic() + 300, log=said.append)
    assert "(about 400 s) is longer than the 299 s given; starting it all the same" in said[1]
    assert finished[cell8].attack_s == 100.0 and not kept.exists()
    _assert_same_points({cell16: S.run_cells(cfg)[cell16]}, {cell16: finished[cell16]})
    # a cell that was not attacked (it did not learn) predicts nothing
    store.store(cfg, cell8, "cpu", {**made_up, "skipped": "did not learn", "attacked": 0})
    assert store.attack_seconds(cfg, cell16, "cpu") == {}


def test_a_cell_name_changes_with_what_its_numbers_depend_on():
    cfg, cell = _tiny(), ("upsampled", "mlp", "fewer", 16)
    name = C.CellStore.name(cfg, cell, "cpu")
    assert name.startswith("upsampled-mlp-fewer-16-")
    assert C.CellStore.name(dataclasses.replace(cfg, sides=(16, 32)), cell, "cpu") == name
    assert C.CellStore.name(dataclasses.replace(cfg, n_boot=7), cell, "cpu") == name
    for changed in (
        dict(seed=1),
        dict(sides=(8, 16)),
        dict(test_points=64),
        dict(contrast=0.5),
        dict(training=M.Training(steps=21, batch=32)),
    ):
        assert C.CellStore.name(dataclasses.replace(cfg, **changed), cell, "cpu") != name
    assert C.CellStore.name(cfg, cell, "cuda") != name
    assert C.CellStore.name(cfg, ("upsampled", "mlp", "more", 16), "cpu") != name


def test_an_attack_is_predicted_from_the_largest_smaller_side():
    assert C.predicted_attack_s({8: 1.0, 16: 3.0, 64: 50.0}, 32) == pytest.approx(12.0)
    assert C.predicted_attack_s({64: 50.0}, 32) == 0.0


def test_the_command_line_runs_exports_and_fits(torch_backend, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(S.SIZES, "cpu", _tiny(name="cpu"))
    monkeypatch.delenv(S.SIZE_ENV, raising=False)
    monkeypatch.delenv("HDBENCH_SMOKE", raising=False)
    folder = str(tmp_path / "cells")
    args = ["run", folder, "--models", "linear", "--min-side", "16"]
    assert C.main([*args, "--budget", "0"]) == C.STOPPED
    assert "stopped: train: stopped before step 0 of 20 of linear at side 16" in (
        capsys.readouterr().out
    )
    assert C.main(args) == 0
    assert len(list(tmp_path.glob("cells/*.json"))) == 2
    assert C.main(["run", folder, "--models", "linear"]) == 0  # adds side 8 alone
    assert len(list(tmp_path.glob("cells/*.json"))) == 3
    out = capsys.readouterr().out
    assert out.count("scaling: upsampled/linear/fewer") == 5  # 16, 32, then 8, 16 and 32 read
    assert C.main(["export", folder, str(tmp_path / "scaling_x_points.jsonl.gz")]) == 0
    from hdbench.reports import gpu_scaling

    cells = gpu_scaling.load([tmp_path / "scaling_x_points.jsonl.gz"])
    assert sorted(cells[(tmp_path.name, "upsampled", "linear", "fewer")]) == [8, 16, 32]
    assert C.main(["fit", folder]) == 0
    fit = capsys.readouterr().out
    assert "upsampled/linear/fewer sides 8–32 (3) l2_N" in fit
    with pytest.raises(ValueError, match=r"cells: expected models among \('linear', 'mlp'\)"):
        C.main(["run", folder, "--models", "resnet"])
    with pytest.raises(ValueError, match="cells: expected sides of"):
        C.main(["run", folder, "--min-side", "64"])
    for command in (["fit"], ["export", str(tmp_path / "out.jsonl")]):
        with pytest.raises(ValueError, match=f"cells {command[0]}: expected a folder of cells"):
            C.main([command[0], str(tmp_path / "empty"), *command[1:]])


def test_asv_reads_the_store_named_by_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(C.CELLS_ENV, raising=False)
    assert C.store_from_env() is None
    monkeypatch.setenv(C.CELLS_ENV, str(tmp_path))
    assert C.store_from_env().folder == tmp_path
    monkeypatch.setenv(C.CELLS_ENV, "cells")  # asv runs benchmarks in a temporary folder
    with pytest.raises(ValueError, match="HDBENCH_SCALING_CELLS: expected an absolute path"):
        C.store_from_env()
    (tmp_path / "f").write_text("")
    with pytest.raises(ValueError, match="CellStore: expected a folder, got the file"):
        C.CellStore(tmp_path / "f")
    with pytest.raises(ValueError, match="run_cells: expected a store with a deadline"):
        S.run_cells(_tiny(), deadline=time.monotonic() + 60)


def test_a_stored_cell_reads_back_whole_and_bad_files_are_named(tmp_path):
    store, cfg, cell = C.CellStore(tmp_path), _tiny(), ("noisy", "cnn", "fewer", 8)
    point = {
        "clean_accuracy": 0.9,
        "attacked": 3,
        "l2": np.array([1.0, 2.5, 0.5]),
        "median_l2": 1.0,
        "level_shares": [0.5, math.nan],
        "pixels_90": math.nan,
    }
    store.store(cfg, cell, "cpu", point)
    back = store.load(cfg, cell, "cpu")
    np.testing.assert_array_equal(back.l2, point["l2"])
    assert back.linf.size == 0  # every per-sample field, empty where there is none
    assert math.isnan(back.pixels_90) and math.isnan(back.level_shares[1])
    (record,) = store.records()
    assert record.made_of == C.CellStore.made_of(cfg, cell, "cpu")
    assert record.made_of["version"] == C.CELL_VERSION
    # the same cell of another run in the same folder: refused, both files named
    store.store(dataclasses.replace(cfg, seed=1), cell, "cpu", point)
    twice = r"CellStore.records: expected one cell \('noisy', 'cnn', 'fewer', 8\) .* got noisy-"
    with pytest.raises(ValueError, match=twice):
        list(store.records())
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"CellStore: expected a cell's JSON in .*x.json"):
        list(C.CellStore(bad).records())
    (bad / "x.json").write_text('{"family": "natural"}')
    with pytest.raises(ValueError, match="no family, model, regime and side"):
        list(C.CellStore(bad).records())


def test_training_killed_outright_resumes_from_its_last_periodic_save(monkeypatch, tmp_path):
    monkeypatch.setattr(M, "CHECKPOINT_EVERY_S", 0.0)  # a save after every step
    scenes = Scenes("upsampled", (8, 16), seed=1)
    training = M.Training(steps=10, batch=20)
    whole = M.train("mlp", scenes, 16, "fewer", training=training, seed=3)
    cycle = M._cycle

    def killed_at_step_6(*args):
        for t, batch in enumerate(cycle(*args)):
            if t == 6:
                raise KeyboardInterrupt  # as a kill would, between two steps
            yield batch

    ckpt = tmp_path / "c.pt"
    monkeypatch.setattr(M, "_cycle", killed_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        M.train("mlp", scenes, 16, "fewer", training=training, seed=3, checkpoint=ckpt)
    assert torch.load(ckpt, weights_only=True)["step"] == 6
    monkeypatch.setattr(M, "_cycle", cycle)
    _same_model(
        M.train("mlp", scenes, 16, "fewer", training=training, seed=3, checkpoint=ckpt), whole
    )

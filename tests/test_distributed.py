"""hvd_magtag.distributed: the local (size-1) backend in-process, and real ``horovodrun -np 2`` jobs.

Multi-rank tests run the scripts in ``tests/multirank`` under the venv's horovodrun (MPI and Gloo
controllers); each rank writes its results to files in ``tmp_path`` which the test compares.

Tolerances: two ranks on half batches vs one process on the full batches, SGD with momentum, 5 steps:
weights agree within ``rtol = atol = 1e-5`` (float32 summation order differs: averaging two half-batch
mean gradients vs one full-batch mean; measured ~1e-8). The two ranks agree bit for bit (both apply the
same allreduced gradient). fp16 compression rounds gradients to ~3 significant digits: within 1e-3.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import keras
import numpy as np
import psutil
import pytest
import tensorflow as tf
from multirank import toy
from multirank.runner import check_ok, job_environment, run_horovod

from hvd_magtag import distributed
from hvd_magtag.errors import ConfigError

SCRIPTS = Path(__file__).resolve().parent / "multirank"
#: Seconds a 2-rank job may take on 2 shared cores (each rank imports TensorFlow) before it is killed.
JOB_TIMEOUT = 300
#: Seconds before the deliberately hung job is killed (its ranks start without TensorFlow in a few seconds).
HANG_TIMEOUT = 30
RTOL = ATOL = 1e-5
FP16_ATOL = 1e-3
BN_STATS = ("moving_mean", "moving_variance")
CONTROLLERS = pytest.mark.parametrize("gloo", [False, True], ids=["mpi", "gloo"])


def run_local(script: Path, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python script args`` as a plain process (no launcher: the local backend unless env forces Horovod)."""
    proc = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=JOB_TIMEOUT,
        env=job_environment(env),
    )
    check_ok(proc)
    return proc


def split(state: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """(BN moving statistics, everything else) of a saved state."""
    stats = {k: v for k, v in state.items() if k.endswith(BN_STATS)}
    return stats, {k: v for k, v in state.items() if k not in stats}


def assert_identical(a: dict, b: dict, what: str) -> None:
    assert sorted(a) == sorted(b), f"{what}: different variables"
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what}: {k}")


# ------------------------------------------------------------------------------------ local backend
def test_import_is_cheap_and_does_not_import_horovod_or_tensorflow():
    code = (
        "import sys, hvd_magtag.distributed\n"
        "bad = [m for m in ('horovod', 'tensorflow', 'keras') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, env=job_environment())


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"}, True),  # mpirun / horovodrun (MPI)
        ({"HOROVOD_RANK": "0", "HOROVOD_SIZE": "2"}, True),  # horovodrun --gloo
        ({"PMI_SIZE": "4", "PMI_RANK": "3"}, True),  # MPICH / Intel MPI / srun --mpi=pmi2
        ({"PMIX_RANK": "0", "OMPI_MCA_ess": "singleton"}, False),  # inherited from an MPI singleton
        ({"HVD_MAGTAG_HOROVOD": "1"}, True),
        ({"HVD_MAGTAG_HOROVOD": "0", "OMPI_COMM_WORLD_SIZE": "2"}, False),
    ],
)
def test_launcher_detection(environ, expected):
    assert distributed.launched_by_launcher(environ) is expected


def test_bad_force_value_is_named():
    with pytest.raises(ValueError, match="HVD_MAGTAG_HOROVOD"):
        distributed.launched_by_launcher({"HVD_MAGTAG_HOROVOD": "yes"})


def test_init_configures_threads_in_a_fresh_process():
    code = (
        "import json\n"
        "from hvd_magtag import distributed\n"
        "ctx = distributed.init(threads=1)\n"
        "assert distributed.init() is ctx and distributed.init(threads=1) is ctx\n"
        "import tensorflow as tf\n"
        "t = tf.config.threading\n"
        "print(json.dumps({**ctx.__dict__, 'intra': t.get_intra_op_parallelism_threads(),"
        " 'inter': t.get_inter_op_parallelism_threads()}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=job_environment()
    )
    check_ok(proc)
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info == {
        "rank": 0,
        "size": 1,
        "local_rank": 0,
        "local_size": 1,
        "is_root": True,
        "threads": 1,
        "backend": "local",
        "intra": 1,
        "inter": 1,
    }


def test_init_after_tensorflow_started_warns_and_continues():
    code = (
        "import tensorflow as tf\n"
        "tf.constant(1.0) + 1.0\n"  # the runtime is up: thread pools are fixed now
        "from hvd_magtag import distributed\n"
        "ctx = distributed.init(threads=1)\n"
        "print('threads', ctx.threads)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=job_environment()
    )
    check_ok(proc)
    assert "threads 1" in proc.stdout
    assert "Call init() before any TensorFlow op" in proc.stderr


@pytest.fixture(scope="module")
def ctx() -> distributed.Context:
    assert not distributed.launched_by_launcher(), "pytest itself must not run under a launcher"
    return distributed.init()


def test_local_context(ctx):
    assert (ctx.rank, ctx.size, ctx.local_rank, ctx.local_size, ctx.is_root, ctx.backend) == (
        0,
        1,
        0,
        1,
        True,
        "local",
    )
    assert ctx.threads >= 1
    assert distributed.init() is ctx
    assert distributed.context() is ctx


def test_backing_variable(ctx):
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    assert isinstance(distributed.backing_variable(layer.kernel), tf.Variable)
    assert distributed.backing_variable(layer.kernel) is layer.kernel.value
    plain = tf.Variable(1.0)
    assert distributed.backing_variable(plain) is plain
    with pytest.raises(TypeError, match="keras.Variable or tf.Variable"):
        distributed.backing_variable(tf.constant(1.0))


@pytest.mark.parametrize("compression", ["none", "fp16"])
def test_local_gradient_tape_is_the_plain_gradient(ctx, compression):
    keras.utils.set_random_seed(0)
    model = toy.conv_model()
    (x, y) = toy.global_batches(1, 4, seed=1)[0]
    loss_fn = keras.losses.BinaryCrossentropy()
    with tf.GradientTape(persistent=True) as tape:
        loss = loss_fn(y, model(x, training=True))
    expected = tape.gradient(loss, [v.value for v in model.trainable_variables])
    got = distributed.DistributedGradientTape(tape, compression=compression).gradient(
        loss, model.trainable_variables
    )
    assert len(got) == len(expected) == len(model.trainable_variables)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g.numpy(), e.numpy())
    assert any(float(tf.reduce_max(tf.abs(g))) > 0 for g in got)


def test_unknown_compression_is_rejected(ctx):
    with tf.GradientTape() as tape:
        pass
    with pytest.raises(ValueError, match="compression='bf16'"):
        distributed.DistributedGradientTape(tape, compression="bf16")


def test_local_collectives_are_identities_on_copies(ctx):
    a = np.arange(6, dtype=np.float32).reshape(3, 2)
    gathered = distributed.allgather(a)
    np.testing.assert_array_equal(gathered, a)
    gathered[0, 0] = -1
    assert a[0, 0] == 0, "allgather must not alias its input"
    assert distributed.allgather(np.int32(7)).tolist() == [7]
    reduced = distributed.allreduce(a, average=False)
    assert isinstance(reduced, np.ndarray) and reduced is not a
    np.testing.assert_array_equal(reduced, a)
    assert tf.is_tensor(distributed.allreduce(tf.constant(a)))
    obj = {"tags": ["guitar"]}
    assert distributed.broadcast_object(obj) is obj
    distributed.barrier()


def test_local_broadcast_builds_the_optimizer_and_keeps_weights(ctx):
    keras.utils.set_random_seed(0)
    model = toy.conv_model()
    before = [v.numpy().copy() for v in model.variables]
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    distributed.broadcast_model_and_optimizer(model, optimizer)
    assert optimizer.built and len(optimizer.variables) > len(model.trainable_variables)
    for b, v in zip(before, model.variables):
        np.testing.assert_array_equal(b, v.numpy())
    with pytest.raises(ValueError, match="build it"):
        distributed.broadcast_model_and_optimizer(keras.Sequential([keras.layers.Dense(1)]), optimizer)


def test_logger_emits_on_rank0_only(ctx, capsys, monkeypatch):
    log = distributed.get_logger(f"hvd_magtag.tests.{uuid.uuid4().hex}")
    log.info("hello from the root")
    log.getChild("part").info("hello from a child logger")
    log.warning("a warning of a single process")
    err = capsys.readouterr().err
    assert "hello from the root" in err and "[rank" not in err, "one process: no rank prefix at all"
    assert " INFO " + log.name + ".part: hello from a child logger" in err
    assert " WARNING " + log.name + ": a warning of a single process" in err
    monkeypatch.setattr(distributed, "_context", distributed.Context(0, 2, 0, 2, True, 1, "horovod"))
    log.info("progress of rank zero")
    log.warning("warning of rank zero")
    err = capsys.readouterr().err
    assert " INFO " + log.name + ": progress of rank zero" in err, "rank 0's progress goes unprefixed"
    assert "[rank 0/2] WARNING " + log.name + ": warning of rank zero" in err
    monkeypatch.setattr(distributed, "_context", distributed.Context(1, 2, 1, 2, False, 1, "horovod"))
    log.info("info from rank one")
    log.warning("warning from rank one")
    log.error("error from rank one")
    log.getChild("part").info("child info from rank one")
    err = capsys.readouterr().err
    assert "info from rank one" not in err and "warning from rank one" not in err
    assert "[rank 1/2] ERROR" in err and "error from rank one" in err
    assert distributed.get_logger(log.name) is log and len(log.handlers) == 1


# ------------------------------------------------------------------------- collectives (multi-rank)
def check_collectives(out: Path, size: int, output: str) -> None:
    """Each rank's files against values built here independently of the script."""
    rows = [2 * r + 3 for r in range(size)]
    expected = np.concatenate(
        [np.full((n, 3), 100.0 * r) + np.arange(n)[:, None] for r, n in enumerate(rows)]
    )
    totals = np.array([sum(r + 1 for r in range(size)), sum(2 * (r + 1) for r in range(size))], np.float32)
    for rank in range(size):
        meta = json.loads((out / f"rank{rank}.json").read_text())
        ctx = meta["context"]
        assert (ctx["rank"], ctx["size"], ctx["local_rank"], ctx["local_size"], ctx["is_root"]) == (
            rank,
            size,
            rank,
            size,
            rank == 0,
        )
        assert ctx["backend"] == "horovod"
        assert ctx["threads"] == max(1, meta["cores"] // size) == meta["intra_op"] == meta["inter_op"]
        assert meta["object"] == {"from": 0, "tags": ["guitar", "piano"]}
        with np.load(out / f"rank{rank}.npz") as got:
            np.testing.assert_array_equal(got["gathered"], expected)
            assert got["gathered_empty"].shape == (2 * ((size + 1) // 2), 3)
            np.testing.assert_array_equal(got["gathered_scalar"], np.arange(size))
            np.testing.assert_allclose(got["sum"], totals)
            np.testing.assert_allclose(got["mean"], totals / size)
            np.testing.assert_allclose(got["mean_tensor"], totals / size)
    assert output.count("collectives-info-marker") == 1, "an INFO record must be printed by rank 0 only"
    assert output.count("collectives-error-marker") == size, "an ERROR record must be printed by every rank"
    if size > 1:
        assert f"[rank 1/{size}] ERROR" in output


@pytest.mark.multirank
@CONTROLLERS
def test_collectives_and_rank0_logging(gloo, tmp_path, horovodrun):
    proc = run_horovod(
        SCRIPTS / "collectives.py", np=2, args=["--out", tmp_path], gloo=gloo, timeout=JOB_TIMEOUT
    )
    check_ok(proc)
    check_collectives(tmp_path, 2, proc.stdout + proc.stderr)


def test_horovod_backend_at_size_one(tmp_path):
    """HVD_MAGTAG_HOROVOD=1 without a launcher: Horovod initialises as one rank (MPI singleton)."""
    proc = run_local(SCRIPTS / "collectives.py", "--out", tmp_path, env={"HVD_MAGTAG_HOROVOD": "1"})
    check_collectives(tmp_path, 1, proc.stdout + proc.stderr)


# ---------------------------------------------------------------------- training (multi-rank)
@pytest.fixture(scope="module")
def reference_run(tmp_path_factory) -> Path:
    """train_equivalence.py as one plain process on the full global batches (the local backend)."""
    out = tmp_path_factory.mktemp("reference")
    run_local(SCRIPTS / "train_equivalence.py", "--out", out)
    meta = json.loads((out / "context.rank0.json").read_text())
    assert (meta["backend"], meta["size"]) == ("local", 1)
    return out


@pytest.mark.multirank
@CONTROLLERS
def test_two_ranks_match_one_process(gloo, reference_run, tmp_path, horovodrun):
    proc = run_horovod(
        SCRIPTS / "train_equivalence.py", np=2, args=["--out", tmp_path], gloo=gloo, timeout=JOB_TIMEOUT
    )
    check_ok(proc)

    def ranks(name):
        return [toy.load_state(tmp_path / f"{name}.rank{r}.npz") for r in (0, 1)]

    def ref(name):
        return toy.load_state(reference_run / f"{name}.rank0.npz")

    for r in (0, 1):
        meta = json.loads((tmp_path / f"context.rank{r}.json").read_text())
        assert (meta["backend"], meta["rank"], meta["size"]) == ("horovod", r, 2)

    # BN-free model: ranks bit-identical, equal to the 1-process full-batch run, and far from the start.
    plain0, plain1 = ranks("plain")
    assert_identical(plain0, plain1, "plain: rank 0 vs rank 1")
    reference = ref("plain")
    for k in reference:
        np.testing.assert_allclose(
            plain0[k], reference[k], rtol=RTOL, atol=ATOL, err_msg=f"plain vs 1 process: {k}"
        )
    init = toy.load_state(tmp_path / "init.rank0.npz")
    assert toy.max_abs_diff(init, plain0, "model") > 1000 * ATOL, "training must move the weights"

    # Negative control: without the allreduce the ranks diverge and miss the reference by far more than ATOL.
    unsynced0, unsynced1 = ranks("unsynced")
    assert toy.max_abs_diff(unsynced0, unsynced1) > 100 * ATOL
    assert toy.max_abs_diff(unsynced0, reference) > 100 * ATOL

    # fp16 compression: ranks still identical; close to, but not exactly, the uncompressed result.
    fp16_0, fp16_1 = ranks("fp16")
    assert_identical(fp16_0, fp16_1, "fp16: rank 0 vs rank 1")
    assert 0 < toy.max_abs_diff(fp16_0, plain0) <= FP16_ATOL, (
        "fp16 compression must be applied and stay close"
    )

    # BatchNormalization: trainable weights and optimizer state identical; moving statistics are per-rank
    # (each rank normalised its own half) until averaged with average_variables().
    bn0, bn1 = ranks("bn")
    stats0, rest0 = split(bn0)
    stats1, rest1 = split(bn1)
    assert_identical(rest0, rest1, "bn: trainable weights and optimizer state")
    assert stats0 and toy.max_abs_diff(stats0, stats1) > 1e-6, "BN moving statistics should differ per rank"
    avg0, avg1 = (split(s)[0] for s in ranks("bn_avg"))
    assert_identical(avg0, avg1, "bn_avg: moving statistics after average_variables")
    for k in stats0:
        np.testing.assert_allclose(avg0[k], (stats0[k] + stats1[k]) / 2, rtol=1e-6, atol=1e-7, err_msg=k)


@pytest.mark.multirank
def test_broadcast_makes_different_ranks_identical(tmp_path, horovodrun):
    proc = run_horovod(SCRIPTS / "broadcast_check.py", np=2, args=["--out", tmp_path], timeout=JOB_TIMEOUT)
    check_ok(proc)
    before0, before1, after0, after1 = (
        toy.load_state(tmp_path / f"{stage}.rank{r}.npz") for stage in ("before", "after") for r in (0, 1)
    )
    model_keys = [k for k in before0 if k.startswith("model")]
    slot_keys = [k for k in before0 if k.endswith("|momentum")]
    assert slot_keys, "the SGD momentum slots must be part of the saved state"
    iteration = [k for k in before0 if k.startswith("opt") and k.endswith("|iteration")]
    assert len(iteration) == 1, "the optimizer's iteration counter must be part of the saved state"
    for k in [*model_keys, *slot_keys, *iteration]:
        assert not np.array_equal(before0[k], before1[k]), f"{k} should differ before the broadcast"
    assert_identical(after0, before0, "rank 0 unchanged by the broadcast")
    assert_identical(after1, before0, "rank 1 after the broadcast vs rank 0")

    adam_before = [toy.load_state(tmp_path / f"adam_before.rank{r}.npz") for r in (0, 1)]
    adam_after = [toy.load_state(tmp_path / f"adam_after.rank{r}.npz") for r in (0, 1)]
    assert toy.max_abs_diff(*adam_before) > 0.01
    assert any(k.startswith("opt") and k.endswith("|velocity") for k in adam_after[0]), "Adam must be built"
    assert_identical(adam_after[1], adam_after[0], "unbuilt Adam + model after the broadcast")


# ---------------------------------------------------------------------------------------- elastic
def test_local_elastic_state_and_run(ctx):
    keras.utils.set_random_seed(0)
    model = toy.conv_model()
    optimizer = keras.optimizers.SGD(learning_rate=0.1)
    state = distributed.elastic_state(model, optimizer, step=3, epoch=1)
    assert isinstance(state, distributed.LocalElasticState) and optimizer.built
    assert (state.step, state.epoch) == (3, 1)

    @distributed.elastic_run
    def train(state, extra):
        state.step += extra
        state.commit()
        return state.step

    assert train(state, 2) == 5 and train.__name__ == "train"


def test_shared_state_shares_once_joins_once_and_raises_rank_0s_error(ctx):
    """shared_state's sync at size 1: share() once (rank 0), join() once with its value, the attributes join
    returns; a one-line error of share() is raised by the sync (on every rank, in a job)."""
    keras.utils.set_random_seed(0)
    calls: list[str] = []
    made: dict = {}

    def share():
        calls.append("share")
        return {"start": 7}

    def join(value):
        calls.append(f"join {value['start']}")
        made["model"] = toy.conv_model()
        made["optimizer"] = keras.optimizers.SGD(learning_rate=0.1)
        made["optimizer"].build(made["model"].trainable_variables)
        return {"step": value["start"]}

    def variables():
        return [*made["model"].variables, *made["optimizer"].variables]

    state = distributed.shared_state(variables, share=share, join=join, elastic=True, step=0, best=-1.0)
    assert state.step == 0 and calls == []  # nothing runs before the first sync

    @distributed.elastic_run
    def train(state):
        state.step += 1
        state.commit()
        return state.step

    assert train(state) == 8 and state.best == -1.0
    state.sync()  # a later sync broadcasts the kept value again (any rank may be rank 0 then): no new calls
    assert calls == ["share", "join 7"] and state.step == 8

    def broken():
        raise ConfigError("data.root /nope: no such folder")

    failing = distributed.shared_state(variables, share=broken, join=join, step=0)
    with pytest.raises(ConfigError, match="/nope"):
        failing.sync()


@pytest.mark.multirank
def test_elastic_job_recovers_from_a_failed_rank(tmp_path, horovodrun):
    """Rank 1 fails once before step 2; both roll back to their last commit, re-sync and finish. The final
    weights equal an uninterrupted 1-process run, so the rollback and the variable re-broadcast both work
    (a reset callback overwrites rank 1's weights with 7.0 before the re-sync)."""
    reference = tmp_path / "reference"
    run_local(SCRIPTS / "elastic_train.py", "--out", reference)
    discover = tmp_path / "discover_hosts.sh"
    discover.write_text("#!/bin/sh\necho localhost:2\n")
    discover.chmod(0o755)
    elastic = ["--min-np", 2, "--max-np", 2, "--network-interface", "lo", "--host-discovery-script", discover]
    out = tmp_path / "elastic"
    proc = run_horovod(
        SCRIPTS / "elastic_train.py",
        np=2,
        args=["--out", out, "--fail-at", 2],
        timeout=JOB_TIMEOUT,
        launcher_args=elastic,
    )
    check_ok(proc)
    events = [json.loads((out / f"final.rank{r}.json").read_text()) for r in (0, 1)]
    assert [e["failed"] for e in events] == [False, True], "rank 1 should have failed once"
    assert [e["resets"] for e in events] == [1, 1] and {e["step"] for e in events} == {5}
    final0, final1 = (toy.load_state(out / f"final.rank{r}.npz") for r in (0, 1))
    assert_identical(final0, final1, "elastic: rank 0 vs rank 1")
    expected = toy.load_state(reference / "final.rank0.npz")
    for k in expected:
        np.testing.assert_allclose(
            final0[k], expected[k], rtol=RTOL, atol=ATOL, err_msg=f"elastic vs 1 process: {k}"
        )


# ------------------------------------------------------------------------------ process hygiene
@pytest.mark.multirank
@CONTROLLERS
def test_runner_kills_a_hung_job(gloo, tmp_path, horovodrun):
    tag = uuid.uuid4().hex
    with pytest.raises(subprocess.TimeoutExpired):
        run_horovod(
            SCRIPTS / "hang.py",
            np=2,
            args=["--out", tmp_path],
            gloo=gloo,
            timeout=HANG_TIMEOUT,
            env={"HANG_TAG": tag},
        )
    started = sorted(p.name for p in tmp_path.glob("started.rank*"))
    assert started == ["started.rank0", "started.rank1"], f"ranks had not started within {HANG_TIMEOUT} s"
    survivors = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("HANG_TAG") == tag and p.status() != psutil.STATUS_ZOMBIE:
                survivors.append((p.pid, p.cmdline()))
        except psutil.Error:
            continue
    assert not survivors, f"processes of the timed-out job still alive: {survivors}"

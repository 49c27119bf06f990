"""Horovod, in one small module: the only place in hvd_magtag that imports ``horovod``.

Call :func:`init` first thing in a training script, **before any TensorFlow op runs** (before building a
model, a dataset or a tensor): thread pools and visible GPUs can only be configured before the TensorFlow
runtime starts. Then the whole data-parallel loop reads::

    ctx = distributed.init()                               # Context(rank, size, local_rank, local_size, ...)
    log = distributed.get_logger(__name__)                 # INFO on rank 0 only
    model = create_model(...); optimizer = keras.optimizers.SGD(lr * ctx.size, momentum=0.9)
    distributed.broadcast_model_and_optimizer(model, optimizer)   # same start on every rank

    @tf.function
    def step(x, y):                                        # x: this rank's slice of the global batch
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))     # mean over the LOCAL batch
        tape = distributed.DistributedGradientTape(tape, compression="none")
        grads = tape.gradient(loss, model.trainable_variables)   # averaged over ranks
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

Backends
--------
*horovod* when the process was started by a launcher (``horovodrun``, ``mpirun``/``mpiexec``, ``srun``,
``jsrun``: recognised by the variables they export, see :data:`LAUNCHER_ENV`); *local* otherwise: a plain
single process of size 1 in which every collective is the identity and Horovod is never imported. The local
backend deliberately does not call ``hvd.init()``: with the MPI controller that starts an MPI singleton (an
``orted`` daemon, ~0.4 s) and leaks ``OMPI_*``/``PMIX_*`` variables into every subprocess, which breaks a
``horovodrun`` launched later from the same process (a notebook kernel, a pytest session). Set
``HVD_MAGTAG_HOROVOD=1`` to force Horovod (an unrecognised launcher, or to exercise Horovod at size 1) and
``HVD_MAGTAG_HOROVOD=0`` to force the local backend.

Keras 3
-------
Horovod's TensorFlow ops predate Keras 3 variables (``keras.Variable`` is not a ``tf.Variable``; horovod
issue 4290). Every function here accepts Keras or TensorFlow variables and hands Horovod the backing
``tf.Variable`` (``keras_variable.value``). ``horovod.tensorflow.keras`` is never used: its optimizer hooks
are not called by Keras 3 optimizers, so gradients would silently not be averaged.

Elastic jobs
------------
``state = elastic_state(model, optimizer, step=0)`` and ``@elastic_run def train(state): ...`` with
``state.commit()`` every few steps (``horovodrun --min-np/--max-np --host-discovery-script``; on one host
add ``--network-interface lo``). A worker that joins a running job starts the script from the top while
the others are in the step loop: it must run no collective before ``elastic_run``'s first sync (which the
others run after their reset). :func:`shared_state` is built for that: rank 0's set-up (data, run directory,
checkpoint) travels inside the sync, and the model is built on each process at its first sync. Use these rather than Horovod's ``TensorFlowState``: in eager TF2 its
re-sync after a reset does not broadcast the variables (seen here: ranks ended 7.8 apart after a reset),
and ``TensorFlowKerasState`` calls Keras 2 APIs.

Batch normalisation
-------------------
Gradient averaging keeps *trainable* weights identical on every rank. BatchNormalization's moving mean and
variance are *not* trained: each rank updates them from its own local batches, so they drift apart across
ranks. Make them identical before using or saving them (checkpoints, validation) with
``broadcast_variables(model.non_trainable_variables)`` (rank 0's statistics) or ``average_variables(...)``
(the mean over ranks: an estimate from every rank's data; for variances it ignores the spread between the
ranks' means). During training, BN normalises with *local* batch statistics (batch // size examples), so
a BN model on N ranks is not numerically the same as one process on the global batch; without BN it is
(tests/test_distributed.py: equal within 1e-5 after 5 SGD-momentum steps).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from hvd_magtag.cli import env_rank_size
from hvd_magtag.errors import ConfigError

#: Environment variables whose presence means a launcher started this process as one of several ranks.
#: (horovodrun/Gloo, Open MPI, MPICH/Intel MPI/Slurm PMI-2, MVAPICH, Slurm PMIx, IBM jsrun.)
LAUNCHER_ENV = (
    "HOROVOD_RANK",
    "HOROVOD_GLOO_RENDEZVOUS_ADDR",
    "OMPI_COMM_WORLD_SIZE",
    "PMI_SIZE",
    "MV2_COMM_WORLD_SIZE",
    "PMIX_RANK",
    "JSM_NAMESPACE_SIZE",
)
#: Override: "1" forces the Horovod backend, "0" the local one; unset = auto-detect from :data:`LAUNCHER_ENV`.
FORCE_ENV = "HVD_MAGTAG_HOROVOD"
#: Gradient compression choices of :class:`DistributedGradientTape` -> name in ``hvd.Compression``.
COMPRESSIONS = {"none": "none", "fp16": "fp16"}
#: Records at or above this level pass the rank-0 filter on every rank (a failing rank must be heard).
ALL_RANKS_LEVEL = logging.ERROR
#: Records at or above this level carry ``[rank r/size]`` in a job of several ranks (whose rank warned or
#: failed); rank 0's progress (INFO) and every line of a single process go without it.
RANK_PREFIX_LEVEL = logging.WARNING
LOG_FORMAT = "%(asctime)s %(rank_prefix)s%(levelname)s %(name)s: %(message)s"


@dataclass(frozen=True)
class Context:
    """Where this process sits in the job.

    rank / size:             global rank in [0, size) and number of processes.
    local_rank / local_size: the same on this host (one GPU per local rank).
    is_root:                 rank == 0 (the rank that writes checkpoints, logs and results).
    threads:                 CPU threads this rank may use (TF intra-/inter-op pools; use it for
                             tf.data parallelism too): cores // local_size, at least 1.
    backend:                 "horovod" or "local" (size 1, no Horovod).
    """

    rank: int
    size: int
    local_rank: int
    local_size: int
    is_root: bool
    threads: int
    backend: str


_lock = threading.Lock()
_context: Context | None = None


# --------------------------------------------------------------------------------------------- setup
def launched_by_launcher(environ: dict[str, str] | None = None) -> bool:
    """True when this process is one rank of a launched job (or :data:`FORCE_ENV` says so)."""
    env = os.environ if environ is None else environ
    forced = env.get(FORCE_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise ConfigError(
            f"environment variable {FORCE_ENV}={forced!r}: use 1 (Horovod), 0 (local) or unset it"
        )
    # An Open MPI singleton (hvd.init() without a launcher) exports PMIX_RANK to its subprocesses: not a launch.
    if env.get("OMPI_MCA_ess") == "singleton":
        return False
    return any(name in env for name in LAUNCHER_ENV)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask: respects taskset, cgroups, MPI binding)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def init(threads: int | None = None) -> Context:
    """Start (or join) the job and configure TensorFlow for this rank; idempotent.

    Must run before any TensorFlow op. Steps: Horovod ``hvd.init()`` (horovod backend only); one GPU per
    local rank (``gpus[local_rank]``, memory growth on) when GPUs exist; TF intra- and inter-op thread
    pools of ``threads`` (default ``available_cores() // local_size``, at least 1). If TensorFlow already
    started, thread and device settings cannot change: a warning says so and the job goes on.

    Returns the :class:`Context`; later calls return the same object (a different ``threads`` is ignored
    with a warning).
    """
    global _context
    with _lock:
        if _context is not None:
            if threads is not None and threads != _context.threads:
                get_logger(__name__).warning(
                    "init(threads=%d) ignored: already initialised with threads=%d", threads, _context.threads
                )
            return _context
        if threads is not None and threads < 1:
            raise ValueError(
                f"init(threads={threads}): threads must be >= 1 (or None for cores // local_size)"
            )
        if launched_by_launcher():
            hvd = _horovod()
            hvd.init()
            rank, size, local_rank, local_size = hvd.rank(), hvd.size(), hvd.local_rank(), hvd.local_size()
            backend = "horovod"
        else:
            rank, size, local_rank, local_size, backend = 0, 1, 0, 1, "local"
        budget = threads if threads is not None else max(1, available_cores() // local_size)
        _configure_tensorflow(local_rank, budget)
        _context = Context(rank, size, local_rank, local_size, rank == 0, budget, backend)
    get_logger(__name__).debug("initialised %s", _context)
    return _context


def context() -> Context:
    """The current :class:`Context`; raises if :func:`init` has not run."""
    if _context is None:
        raise RuntimeError(
            "hvd_magtag.distributed.init() has not been called: call it first, before any TF op"
        )
    return _context


def shutdown() -> None:
    """Leave the job (``hvd.shutdown()`` on the horovod backend); optional at exit. Allows a later init()."""
    global _context
    with _lock:
        if _context is not None and _context.backend == "horovod":
            _horovod().shutdown()
        _context = None


def hvd_module():
    """The ``horovod.tensorflow`` module of an initialised horovod-backend job (e.g. for ``hvd.elastic``).

    Raises on the local backend, where Horovod is not initialised.
    """
    if context().backend != "horovod":
        raise RuntimeError(
            f"Horovod is not in use (local backend, size 1): launch with horovodrun or set {FORCE_ENV}=1"
        )
    return _horovod()


def _horovod():
    import horovod.tensorflow as hvd

    return hvd


def _configure_tensorflow(local_rank: int, threads: int) -> None:
    import tensorflow as tf

    log = get_logger(__name__)
    try:
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            gpu = gpus[local_rank % len(gpus)]
            tf.config.set_visible_devices(gpu, "GPU")
            tf.config.experimental.set_memory_growth(gpu, True)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError as err:  # "... cannot be modified after initialization"
        log.warning(
            "TensorFlow was already running before distributed.init(): device/thread settings unchanged (%s). "
            "Call init() before any TensorFlow op.",
            err,
        )


def _backend() -> str:
    """Backend of the current job, initialising it (with defaults) if needed."""
    return init().backend


# ---------------------------------------------------------------------------------------- variables
def backing_variable(variable):
    """The ``tf.Variable`` Horovod can handle: ``keras.Variable.value``, or a ``tf.Variable`` itself."""
    import tensorflow as tf

    if isinstance(variable, tf.Variable):
        return variable
    value = getattr(variable, "value", None)
    if isinstance(value, tf.Variable):
        return value
    raise TypeError(
        f"expected a keras.Variable or tf.Variable, got {type(variable).__name__}: {variable!r:.80}"
    )


def backing_variables(variables: Iterable) -> list:
    return [backing_variable(v) for v in variables]


def broadcast_variables(variables: Iterable, root_rank: int = 0) -> None:
    """Overwrite ``variables`` (Keras or tf) on every rank with their values on ``root_rank``, in place.

    Collective: every rank must call it with the same variables in the same order. No-op at size 1.
    """
    tf_vars = backing_variables(variables)
    if _backend() == "local" or not tf_vars:
        return
    _horovod().broadcast_variables(tf_vars, root_rank=root_rank)


def broadcast_model_and_optimizer(model, optimizer, root_rank: int = 0) -> None:
    """Make model weights (trainable and not, e.g. BN statistics) and optimizer state equal to ``root_rank``'s.

    Builds ``optimizer`` on ``model.trainable_variables`` first if needed, so its slots (momentum, Adam
    moments) and iteration counter exist and are broadcast too. Collective; no-op at size 1 apart from
    building the optimizer.
    """
    if not model.variables:
        raise ValueError(
            f"model {model.name!r} has no variables yet: build it (call it on an input) before broadcasting"
        )
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    broadcast_variables([*model.variables, *optimizer.variables], root_rank=root_rank)


def average_variables(variables: Iterable) -> None:
    """Replace each variable by its mean over ranks, in place (e.g. BN moving statistics before a checkpoint).

    Collective; no-op at size 1. Integer variables are averaged with integer division; pass float ones.
    """
    tf_vars = backing_variables(variables)
    if _backend() == "local":
        return
    hvd = _horovod()
    for i, var in enumerate(tf_vars):
        var.assign(hvd.allreduce(var.read_value(), op=hvd.Average, name=f"hvd_magtag.average_variables.{i}"))


class DistributedGradientTape:
    """Wrap a finished ``tf.GradientTape`` so ``.gradient`` returns gradients averaged over ranks.

    ``compression``: "none" or "fp16" (gradients are cast to float16 for the allreduce and back: half the
    bytes on the wire, ~3 significant digits). Works inside ``tf.function``. At size 1 it is the plain
    ``tape.gradient``. Keras variables are mapped to their backing ``tf.Variable`` for Horovod; pass the
    gradients to ``optimizer.apply_gradients(zip(grads, model.trainable_variables))`` as usual.
    """

    def __init__(self, tape, compression: str = "none") -> None:
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression={compression!r}: choose one of {sorted(COMPRESSIONS)}")
        self.compression = compression
        if _backend() == "horovod":
            hvd = _horovod()
            self._tape = hvd.DistributedGradientTape(
                tape, compression=getattr(hvd.Compression, COMPRESSIONS[compression]), op=hvd.Average
            )
        else:
            self._tape = tape

    def gradient(self, target, sources: Sequence, output_gradients=None) -> list:
        """Gradients of ``target`` (the LOCAL-batch mean loss) w.r.t. ``sources``, averaged over ranks.

        Averaging per-rank mean losses equals the gradient of the global-batch mean loss when every rank
        holds the same number of examples (``drop_remainder=True`` batches of global_batch // size).
        """
        return self._tape.gradient(target, backing_variables(sources), output_gradients=output_gradients)


# ------------------------------------------------------------------------------------------ elastic
class LocalElasticState:
    """Size-1 stand-in for :func:`elastic_state`: the keyword attributes, and no-op commit/sync/restore."""

    def __init__(self, **attributes: Any) -> None:
        self.__dict__.update(attributes)
        self._reset_callbacks: list = []

    def commit(self) -> None:
        pass

    def save(self) -> None:
        pass

    def restore(self) -> None:
        pass

    def sync(self) -> None:
        pass

    def check_host_updates(self) -> None:
        pass

    def register_reset_callbacks(self, callbacks) -> None:
        self._reset_callbacks.extend(callbacks)


def elastic_state(model, optimizer, **attributes: Any):
    """State of an elastic job (``horovodrun --min-np/--max-np --host-discovery-script``, Gloo).

    Tracks every model and optimizer variable (optimizer built first) plus ``attributes`` (e.g.
    ``step=0, epoch=0``, exposed as ``state.step``). ``state.commit()`` saves a restore point (and checks
    for host changes); when ranks join or fail, every rank rolls back to the last commit and the state is
    re-broadcast from rank 0 (variables included; Horovod's own ``TensorFlowState`` skips its variables on
    re-sync in eager TF2 and ``TensorFlowKerasState`` calls Keras 2 APIs). After a reset the
    :func:`context` is refreshed (rank and size may have changed). Local backend: :class:`LocalElasticState`.
    Use with :func:`elastic_run`.
    """
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    variables = backing_variables([*model.variables, *optimizer.variables])
    if _backend() == "local":
        return LocalElasticState(**attributes)
    return _keras_state_class()(variables, **attributes)


def shared_state(
    variables: Callable[[], list],
    *,
    share: Callable[[], Any],
    join: Callable[[Any], None],
    elastic: bool = False,
    catch: tuple[type[BaseException], ...] = (ValueError, OSError),
    **attributes: Any,
):
    """The state of a training run that every rank holds alike after ``state.sync()``, set up by rank 0.

    ``state.sync()`` (called by :func:`elastic_run`, or once by hand when not elastic), in this order:

    1. ``share()`` runs on rank 0 if no process has run it yet: what only rank 0 reads (the data, the run
       directory, the checkpoint). Its value is broadcast to every rank (every rank keeps it, so any may be
       rank 0 later); an exception of a ``catch`` type raised by ``share`` is raised on every rank instead.
    2. ``join(value)`` runs once in each process, at its first sync: it makes ``variables()`` exist (model
       and optimizer) and returns the attributes to start from, e.g. ``{"step": 1200}`` (None: unchanged).
    3. the ``variables()`` (Keras or tf) and then the ``attributes`` (``state.step`` ...) are broadcast from
       rank 0.

    So a process that joins a running elastic job runs no collective before its first sync, which every
    existing rank runs too (after its reset callbacks): it receives rank 0's set-up, weights, optimizer state
    and committed step there. ``elastic=True`` (Horovod backend): a Horovod elastic state for
    :func:`elastic_run`; ``commit()`` saves a restore point and raises on membership changes, a reset rolls
    variables and attributes back to it. Otherwise ``commit``/``restore`` are no-ops and reset callbacks never
    run. Collective (``sync``).
    """
    if elastic and _backend() == "horovod":
        return _keras_state_class()(variables, share, join, catch, **attributes)
    return SharedState(variables, share, join, catch, **attributes)


class _Sharing:
    """Steps 1-2 of :func:`shared_state`'s sync, for the plain and the elastic state."""

    def _init_sharing(self, variables, share, join, catch) -> None:
        self._variables_fn, self._share, self._join, self._catch = variables, share, join, catch
        self._shared: tuple[str, Any] | None = None  # ("ok", value) or ("error", exception), once known
        self._joined = False

    def _share_and_join(self, bcast_object) -> bool:
        """Broadcast rank 0's shared value (computing it first if needed), join once; True on the first join."""
        if context().is_root and self._shared is None:
            try:
                self._shared = ("ok", self._share())
            except self._catch as e:
                self._shared = ("error", e)
        self._shared = bcast_object(self._shared if context().is_root else None)
        kind, value = self._shared
        if kind == "error":
            raise value
        if self._joined:
            return False
        for name, attribute in (self._join(value) or {}).items():
            setattr(self, name, attribute)
        self._joined = True
        return True


class SharedState(_Sharing, LocalElasticState):
    """:func:`shared_state` without elastic membership: ``sync`` as documented there; ``commit``, ``save``,
    ``restore`` and ``check_host_updates`` do nothing, reset callbacks are kept but never called (the
    no-ops of :class:`LocalElasticState`)."""

    def __init__(self, variables, share, join, catch, **attributes: Any) -> None:
        self._init_sharing(variables, share, join, catch)
        self._attributes = list(attributes)
        self.__dict__.update(attributes)
        self._reset_callbacks: list = []

    def sync(self) -> None:
        self._share_and_join(broadcast_object)
        broadcast_variables(self._variables_fn())
        values = broadcast_object({name: getattr(self, name) for name in self._attributes})
        self.__dict__.update(values)


def elastic_run(fn):
    """Decorator: run ``fn(state, ...)`` under ``hvd.elastic.run``: ``state.sync()``, then ``fn``; after a reset
    (ranks left or joined) the reset callbacks, ``state.sync()`` again and ``fn`` again from the last commit.

    Resolved at call time, so decorating at import does not initialise anything. Local backend: ``state.sync()``
    and a plain call.
    """

    @functools.wraps(fn)
    def wrapper(state, *args, **kwargs):
        if _backend() == "local":
            state.sync()  # as hvd.elastic.run does before the first call
            return fn(state, *args, **kwargs)
        return _horovod().elastic.run(fn)(state, *args, **kwargs)

    return wrapper


@functools.cache
def _keras_state_class():
    """``hvd.elastic.ObjectState`` + tf.Variables saved/restored/broadcast with it (built lazily).

    Constructed as ``(variables, **attributes)`` with a list (:func:`elastic_state`) or as
    ``(variables_fn, share, join, catch, **attributes)`` (:func:`shared_state`: the variables exist after the
    first sync's join)."""
    hvd = _horovod()
    from horovod.common.elastic import ObjectState

    class KerasElasticState(_Sharing, ObjectState):
        def __init__(self, variables, share=None, join=None, catch=(), **attributes: Any) -> None:
            if callable(variables):
                self._init_sharing(variables, share, join, catch)
            else:
                listed = list(variables)
                self._init_sharing(lambda: listed, None, None, catch)
                self._joined = True  # nothing to share: the variables exist already
            self._saved_values = None
            if self._joined:
                self._save_variables()
            super().__init__(bcast_object=hvd.broadcast_object, get_rank=hvd.rank, **attributes)
            self.register_reset_callbacks([_refresh_context])

        def save(self) -> None:
            self._save_variables()
            super().save()

        def restore(self) -> None:
            if self._saved_values is not None:
                for var, value in zip(self._variables(), self._saved_values):
                    var.assign(value)
            super().restore()

        def sync(self) -> None:
            if self._share is not None and self._share_and_join(hvd.broadcast_object):
                ObjectState.save(self)  # the attributes join set (rank 0's are the ones broadcast below)
            hvd.broadcast_variables(self._variables(), root_rank=0)
            self._save_variables()
            super().sync()

        def _variables(self) -> list:
            return backing_variables(self._variables_fn())

        def _save_variables(self) -> None:
            self._saved_values = [var.numpy() for var in self._variables()]

    return KerasElasticState


def _refresh_context() -> None:
    """After an elastic reset (hvd re-initialised): rank, size and local layout from Horovod."""
    global _context
    hvd = _horovod()
    with _lock:
        old = _context
        threads = old.threads if old is not None else max(1, available_cores() // hvd.local_size())
        _context = Context(
            hvd.rank(), hvd.size(), hvd.local_rank(), hvd.local_size(), hvd.rank() == 0, threads, "horovod"
        )
    get_logger(__name__).info("elastic reset: now rank %d of %d", _context.rank, _context.size)


# -------------------------------------------------------------------------------------- collectives
def allreduce(x, average: bool = True):
    """Sum (or mean when ``average``) of ``x`` over ranks. numpy/Python in -> numpy out; tensor in -> tensor out.

    Collective: every rank calls it with the same shape and dtype, in the same order.
    """
    import numpy as np
    import tensorflow as tf

    as_numpy = not tf.is_tensor(x)
    if _backend() == "local":
        return np.array(x, copy=True) if as_numpy else tf.identity(x)
    hvd = _horovod()
    out = hvd.allreduce(tf.convert_to_tensor(x), op=hvd.Average if average else hvd.Sum)
    return out.numpy() if as_numpy else out


def allgather(array) -> Any:
    """Concatenate ``array`` from every rank along axis 0, in rank order -> ``np.ndarray``.

    First dimensions may differ per rank (0 included); trailing dimensions and dtype must agree. A scalar
    counts as shape [1]. Use it to collect sharded validation predictions on every rank.
    """
    import numpy as np

    arr = np.asarray(array)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if _backend() == "local":
        return arr.copy()
    import tensorflow as tf

    return _horovod().allgather(tf.convert_to_tensor(arr)).numpy()


def broadcast_object(obj: Any, root_rank: int = 0) -> Any:
    """``root_rank``'s ``obj`` (anything cloudpickle can serialise) on every rank. Collective."""
    if _backend() == "local":
        return obj
    return _horovod().broadcast_object(obj, root_rank=root_rank)


def from_root(fn: Callable[[], Any], catch: tuple[type[BaseException], ...] = (ValueError, OSError)) -> Any:
    """``fn()`` run on rank 0 only, its result on every rank. An exception of a ``catch`` type raised by
    ``fn`` on rank 0 is raised on every rank (so a one-line error there does not leave the others waiting
    in the next collective). Collective: e.g. one rank validates a dataset or checks a folder for all.
    """
    outcome = None
    if context().is_root:
        try:
            outcome = ("ok", fn())
        except catch as e:
            outcome = ("error", e)
    kind, value = broadcast_object(outcome)
    if kind == "error":
        raise value
    return value


def barrier() -> None:
    """Block until every rank reaches this point (an allreduce of one int; horovod.tensorflow has no barrier)."""
    if _backend() == "local":
        return
    import tensorflow as tf

    hvd = _horovod()
    hvd.allreduce(tf.constant(0, tf.int32), op=hvd.Sum, name="hvd_magtag.barrier").numpy()


# ------------------------------------------------------------------------------------------ logging
class _RankFilter(logging.Filter):
    """Stamps ``rank``/``size`` and the ``[rank r/size]`` prefix (:data:`RANK_PREFIX_LEVEL`) on records;
    keeps rank 0's records, and everyone's at ERROR or above."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _context is not None:
            rank, size = _context.rank, _context.size
        else:  # before init(): the launcher's environment (a plain process is rank 0 of 1)
            rank, size = env_rank_size() if launched_by_launcher() else (0, 1)
        record.rank, record.size = rank, (size or "?")
        several = size != 1  # 0 = a launcher that did not say its size: say the rank
        labelled = several and (rank != 0 or record.levelno >= RANK_PREFIX_LEVEL)
        record.rank_prefix = f"[rank {rank}/{record.size}] " if labelled else ""
        return rank == 0 or record.levelno >= ALL_RANKS_LEVEL


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (so pytest's capsys/capfd see it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; always follow sys.stderr instead
        pass


def get_logger(name: str) -> logging.Logger:
    """A logger that emits on rank 0 only (ERROR and above from every rank); in a job of several ranks its
    warnings and errors say which rank (``[rank r/size]``), rank 0's progress lines do not.

    The logger gets its own stderr handler at INFO and does not propagate (so records are not printed
    twice when the root logger is configured too). The rank filter sits on the handler, so records of
    child loggers (``name + ".x"``) that propagate to it are filtered and prefixed the same way. Safe to
    call before :func:`init` (the rank then comes from the launcher's environment).
    """
    logger = logging.getLogger(name)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.addFilter(_RankFilter())
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logger.addHandler(handler)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger

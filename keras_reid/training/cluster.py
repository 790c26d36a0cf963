"""The other tasks of a multi-worker run: waiting for them, and stopping on a signal.

TensorFlow's own wait for the cluster (inside ``MultiWorkerMirroredStrategy()``)
has no bound, holds the interpreter (no Python signal handler or thread runs
until it returns), and its coordination service takes SIGTERM over for the
rest of the process. So a worker waits here first, in Python: it listens at
its own address (so that its peers, waiting the same way, can see it) and
connects to each peer's address until every one has answered, for at most
``peer_timeout`` seconds. TensorFlow's wait then only meets workers that are
already up, and SIGTERM and SIGINT stop the run as Ctrl-C does, before, during
and after it (:func:`stop_on_signals`, :func:`stop_or_lost_peer`). At the end,
the task that hosts TensorFlow's coordination service waits for the others to
be gone (:func:`wait_for_peers_to_leave`).
"""

import contextlib
import signal
import socket
import threading
import time

import tensorflow as tf

from keras_reid.errors import ReIDError

PEER_TIMEOUT = 300.0  # seconds; train.peer_timeout
_PROBE = 1.0  # seconds: the longest one connection attempt may take
_PAUSE = 0.5  # seconds between rounds of attempts


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGINT: the run unwinds as for Ctrl-C (files under way are not kept).

    ``str()`` is ``"interrupted by SIGTERM"``; ``exit_code`` is the shell's
    128 + the signal number.
    """

    def __init__(self, signum):
        name = signal.Signals(signum).name
        super().__init__(f"interrupted by {name}")
        self.exit_code = 128 + signum


_RECEIVED = []  # the Stopped of each signal received


def _stop(signum, frame):
    _RECEIVED.append(Stopped(signum))
    raise _RECEIVED[-1]


@contextlib.contextmanager
def stop_or_lost_peer():
    """A multi-worker run's errors: after SIGTERM or SIGINT, that stop; a lost peer, one line.

    The signal handler runs wherever the main thread is when the interpreter
    gets back to it, which may be while TensorFlow turns an error of its own
    into a Python exception (a step whose collective op was aborted): pybind11
    then reports a garbled ``RuntimeError``. So any error after a signal
    received in the block is reported as that signal's :class:`Stopped`.

    A worker that stops (a signal, a crash, a lost machine) aborts the
    others' collective ops at their next step, or at TensorFlow's next missed
    heartbeat, with an ``UnavailableError``: a ReIDError here, naming the way
    back (the same command with ``--resume`` on every worker).
    """
    before = len(_RECEIVED)
    try:
        yield
    except Exception as error:
        if len(_RECEIVED) > before:
            raise _RECEIVED[before] from None
        if isinstance(error, tf.errors.UnavailableError):
            raise ReIDError(
                "another worker of this multi-worker run stopped or can no longer be reached "
                "(TensorFlow aborted the collective ops); run the same command with --resume on "
                "every worker."
            ) from None
        raise


def stop_on_signals():
    """Make SIGTERM and SIGINT raise :class:`Stopped` in the main thread.

    Called again after the strategy is made: TensorFlow's coordination
    service installs its own SIGTERM handler, which only takes note of a
    coming preemption, so the process would otherwise ignore SIGTERM. Does
    nothing outside the main thread (only it may set signal handlers).
    """
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _stop)


def split_address(address):
    """``(host, port)`` of ``"host:port"`` or ``"[IPv6]:port"``; None if it is not one."""
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:  # an IPv6 address needs brackets to tell its last group from the port
        return None
    return host, int(port)


def _listen(port):
    """A socket listening at ``port`` on every interface, as TensorFlow's server will."""
    if socket.has_dualstack_ipv6():
        return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
    return socket.create_server(("", port))


def _answer(address, seconds):
    """None when ``address`` accepts a TCP connection within ``seconds``, else the reason."""
    try:
        socket.create_connection(split_address(address), timeout=seconds).close()
    except socket.gaierror as error:
        return f"unknown host: {error.strerror}"
    except OSError as error:
        return error.strerror or "no answer"
    return None


def wait_for_peers(me, peers, timeout):
    """Return once every peer accepts a connection at its address; ReIDError after ``timeout``.

    While waiting, this task listens at its own address, which is how its
    peers see it. The listener is closed on return, for TensorFlow's server
    to take the port. A peer that answered once is not asked again.

    Args:
        me: ``(name, address)`` of this task, e.g. ``("worker 0", "localhost:12345")``.
        peers: ``[(name, address)]`` of the other tasks.
        timeout: seconds to wait at most (``train.peer_timeout``).
    """
    name, address = me
    try:
        listener = _listen(split_address(address)[1])
    except OSError as error:
        raise ReIDError(
            f"TF_CONFIG: this task ({name}) cannot listen at its address {address}: "
            f"{error.strerror}; free that port or give this task another address."
        ) from None
    missing = dict(peers)
    deadline = time.monotonic() + timeout
    with listener:
        while True:
            reasons = {}
            for peer, where in missing.items():
                left = deadline - time.monotonic()
                reason = _answer(where, max(0.05, min(_PROBE, left)))
                if reason is not None:
                    reasons[peer] = reason
            missing = {peer: missing[peer] for peer in reasons}
            if not missing:
                return
            if time.monotonic() >= deadline:
                break
            time.sleep(min(_PAUSE, max(0.0, deadline - time.monotonic())))
    absent = ", ".join(f"{peer} at {missing[peer]} ({reasons[peer]})" for peer in missing)
    raise ReIDError(
        f"{len(missing)} of the {len(peers) + 1} tasks of TF_CONFIG did not answer within "
        f"train.peer_timeout={timeout:g} s: {absent}; start the same command there (with "
        "that task in TF_CONFIG), check the addresses, or raise train.peer_timeout."
    )


def wait_for_peers_to_leave(peers, timeout):
    """Return once no peer accepts a connection at its address; ReIDError after ``timeout``.

    A task's address answers while its process runs (TensorFlow's server holds
    the port), so this is how the task that hosts the coordination service
    sees the others end before it ends itself.

    Args:
        peers: ``[(name, address)]`` of the other tasks.
        timeout: seconds to wait at most (``train.peer_timeout``).
    """
    running = dict(peers)
    deadline = time.monotonic() + timeout
    while True:
        running = {peer: where for peer, where in running.items() if _answer(where, _PROBE) is None}
        if not running or time.monotonic() >= deadline:
            break
        time.sleep(_PAUSE)
    if running:
        still = ", ".join(f"{peer} at {where}" for peer, where in running.items())
        raise ReIDError(
            f"the run is written, but {still} still ran train.peer_timeout={timeout:g} s after "
            "every worker had reached its end; stop it there (nothing of the run is lost)."
        )

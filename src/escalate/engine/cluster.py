"""Scale-out on an existing Dask cluster: connect, and map tasks with results in order.

Nothing here imports dask until a scheduler is given. Tasks are pure functions of their
arguments (a chunk batch of trajectories with its seed, one world, one design point), so a task
that Dask reruns after a worker dies gives the same answer; results are handed back in
submission order, so everything merged from them (float sums included) is bit-identical to the
in-process run, whatever the cluster and the order tasks finish in. At most ``window`` tasks are
in flight: memory on the client stays flat.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from escalate.errors import EscalateError

__all__ = [
    "CONNECT_TIMEOUT",
    "WORKER_TIMEOUT",
    "connect",
    "failures",
    "mapped",
    "ordered_map",
    "share",
]

CONNECT_TIMEOUT = 5.0  # seconds to reach a scheduler before giving up with a clear error
WORKER_TIMEOUT = 60.0  # seconds a scheduler with no worker may take to get one


@contextlib.contextmanager
def connect(scheduler: Any) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for ``scheduler`` (an address, a Client, or None).

    A Client passed in is used as is and left open. One made from an address is private to
    this call (never the process's default client, so it works from a process that holds no
    Client of its own, as a command does) and closed at the end. An address that cannot be
    reached raises EscalateError within ``CONNECT_TIMEOUT``; a scheduler with no worker, within
    ``WORKER_TIMEOUT``.
    """
    if scheduler is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise EscalateError(
            "a scheduler needs dask.distributed: pip install 'escalate[dask]'"
        ) from None
    if isinstance(scheduler, Client):
        yield scheduler
        return
    address = str(scheduler)
    _check_address(address)
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except Exception as exc:  # OSError, TimeoutError, ValueError, CommClosedError, ...
        raise EscalateError.about(
            "{scheduler} {}: cannot reach a Dask scheduler there within {:g} s ({})",
            address,
            CONNECT_TIMEOUT,
            _one_line(exc),
        ) from None
    try:
        _wait_for_a_worker(client, address)
        yield client
    finally:
        with contextlib.suppress(Exception):  # the figures are in; a failed goodbye is no error
            client.close(timeout=CONNECT_TIMEOUT)


def _wait_for_a_worker(client: Any, address: str) -> None:
    """Refuse a scheduler that no worker has joined within ``WORKER_TIMEOUT``: its tasks would
    wait for ever."""
    with failures(client):
        if client.nthreads():
            return
        try:
            client.wait_for_workers(1, timeout=WORKER_TIMEOUT)
        except TimeoutError:
            raise EscalateError.about(
                "{scheduler} {}: no Dask worker has joined it within {:g} s; "
                "start one with: dask worker {}",
                address,
                WORKER_TIMEOUT,
                address,
            ) from None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextlib.contextmanager
def failures(client: Any) -> Iterator[None]:
    """Turn any failure of the Dask machinery inside the block into one EscalateError: a lost
    scheduler, a task that failed on every worker Dask tried, a broken connection."""
    try:
        yield
    except EscalateError:
        raise
    except Exception as exc:
        address = getattr(getattr(client, "scheduler", None), "address", None) or "?"
        if "scheduler-connection-lost" in str(exc) or _is_comm_error(exc):
            raise EscalateError(
                f"lost the connection to the Dask scheduler at {address}; nothing was "
                "written: run the command again once the scheduler is back"
            ) from None
        raise EscalateError(f"a Dask task failed: {_one_line(exc)}") from None


def _is_comm_error(exc: Exception) -> bool:
    from distributed.comm.core import CommClosedError

    return isinstance(exc, CommClosedError)


def _same(value: Any) -> Any:
    return value


def share(client: Any, value: Any) -> Any:
    """``value`` on the cluster once, as a future its tasks can take as an argument.

    It is the result of a task, not scattered: Dask's active memory manager keeps one replica
    of each key, and a scattered value dies with that worker (its dependent tasks are then
    cancelled), while a task's result is recomputed from its spec on another worker.
    """
    with failures(client):
        return client.submit(_same, value, pure=False)


@contextlib.contextmanager
def mapped(
    fn: Callable[..., Any], model: Any, arguments: Iterable[tuple], scheduler: Any = None
) -> Iterator[Iterator[Any]]:
    """``fn(model, *args)`` for each tuple of ``arguments``, in order, in-process or on the
    cluster of ``scheduler`` (the model sent once); the iterator is closed (its tasks
    cancelled) when the block ends, even on an error."""
    with connect(scheduler) as client:
        shared = model if client is None else share(client, model)
        results = ordered_map(fn, ((shared, *args) for args in arguments), client=client)
        try:
            yield results
        finally:
            results.close()


def _check_address(address: str) -> None:
    """Refuse at once an address that cannot name a scheduler (no port, unknown host), before
    a Client is half built: it would wait out its timeout and complain again at exit."""
    import socket

    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls"):
            host, port = parse_host_port(location)
            socket.getaddrinfo(host, port)
    except (ValueError, OSError) as exc:
        raise EscalateError.about(
            "{scheduler} {}: not a reachable scheduler address ({}); "
            "expected e.g. tcp://10.0.0.5:8786",
            address,
            exc,
        ) from None


def _window(client) -> int:
    threads = sum(client.nthreads().values()) or 1
    return 2 * threads + 2


def ordered_map(
    fn: Callable[..., Any],
    arguments: Iterable[tuple],
    *,
    client: Any = None,
    window: int | None = None,
) -> Iterator[Any]:
    """``fn(*args)`` for each tuple of ``arguments``, yielded in order.

    In-process when ``client`` is None; else as Dask tasks, at most ``window`` in flight
    (default: twice the cluster's threads, plus two). Closing the iterator early (a stop rule
    was met) cancels the tasks still in flight.
    """
    if client is None:
        for args in arguments:
            yield fn(*args)
        return
    with failures(client):
        yield from _ordered_on_cluster(fn, arguments, client, window or _window(client))


def _ordered_on_cluster(fn, arguments, client, window: int) -> Iterator[Any]:
    from distributed import as_completed

    source = iter(enumerate(arguments))
    in_flight: dict[str, tuple[int, Any]] = {}  # task key -> (index, future)
    done: dict[int, Any] = {}  # results that wait for an earlier one
    # the client's own loop: it is no default client (set_as_default=False), and as_completed
    # would otherwise look for one, which a process started from the command line never has
    completed = as_completed(loop=client.loop)

    def submit_more() -> None:
        # results held back count against the window too: memory stays bounded even when
        # the next result in order is slow (a task rerun after a lost worker)
        while len(in_flight) + len(done) < window:
            item = next(source, None)
            if item is None:
                return
            i, args = item
            future = client.submit(fn, *args, pure=False)
            in_flight[future.key] = (i, future)
            completed.add(future)

    submit_more()
    wanted = 0
    try:
        for future in completed:
            key = future.key
            done[in_flight[key][0]] = future.result()
            del in_flight[key]
            while wanted in done:
                yield done.pop(wanted)
                wanted += 1
            submit_more()
    finally:
        for _, future in in_flight.values():
            with contextlib.suppress(Exception):  # a lost scheduler cancels them anyway
                future.cancel()

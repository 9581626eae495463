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
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from escalate.errors import EscalateError

__all__ = ["CONNECT_TIMEOUT", "KERNEL_LOCK", "connect", "mapped", "ordered_map"]

CONNECT_TIMEOUT = 5.0  # seconds to reach a scheduler before giving up with a clear error
# One parallel numba launch at a time in a process: Dask runs tasks on several threads of a
# worker, and numba's default threading layer must not be entered from two threads at once.
KERNEL_LOCK = threading.Lock()


@contextlib.contextmanager
def connect(scheduler: Any) -> Iterator[Any]:
    """A ``dask.distributed.Client`` for ``scheduler`` (an address, a Client, or None).

    A Client passed in is used as is and left open; one made from an address is closed at the
    end. An address that cannot be reached raises EscalateError within ``CONNECT_TIMEOUT``.
    """
    if scheduler is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - depends on the installed extras
        raise EscalateError(
            "--scheduler needs dask.distributed: pip install 'escalate[dask]'"
        ) from None
    if isinstance(scheduler, Client):
        yield scheduler
        return
    address = str(scheduler)
    _check_address(address)
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise EscalateError(
            f"--scheduler {address}: cannot reach a Dask scheduler there within "
            f"{CONNECT_TIMEOUT:g} s ({type(exc).__name__}: {exc})"
        ) from None
    try:
        yield client
    finally:
        client.close()


def _same(value: Any) -> Any:
    return value


def share(client: Any, value: Any) -> Any:
    """``value`` on the cluster once, as a future its tasks can take as an argument.

    It is the result of a task, not scattered: Dask's active memory manager keeps one replica
    of each key, and a scattered value dies with that worker (its dependent tasks are then
    cancelled), while a task's result is recomputed from its spec on another worker.
    """
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
        raise EscalateError(
            f"--scheduler {address}: not a reachable scheduler address ({exc}); "
            "expected e.g. tcp://10.0.0.5:8786"
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
    from distributed import as_completed

    window = window or _window(client)
    source = iter(enumerate(arguments))
    in_flight: dict[str, tuple[int, Any]] = {}  # task key -> (index, future)
    done: dict[int, Any] = {}  # results that wait for an earlier one
    completed = as_completed()

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
            try:
                done[in_flight[key][0]] = future.result()
            except EscalateError:
                raise
            except Exception as exc:  # a task that failed on every worker Dask tried
                raise EscalateError(
                    f"a Dask task failed: {type(exc).__name__}: {exc}".rstrip(": ")
                ) from None
            del in_flight[key]
            while wanted in done:
                yield done.pop(wanted)
                wanted += 1
            submit_more()
    finally:
        for _, future in in_flight.values():
            future.cancel()

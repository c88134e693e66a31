"""Running independent jobs: in this process, on local processes, or on a
Dask cluster (``scheduler``: ``"tcp://HOST:PORT"``, or ``"local"`` for a
local Dask cluster of ``jobs`` worker processes). Results come back as they
finish; callers key them, so the order does not matter and the same jobs
give the same results wherever they ran."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any


@contextmanager
def dask_client(scheduler: str, jobs: int) -> Iterator[Any]:
    """A ``distributed.Client`` on ``scheduler`` (``"local"``: a local
    cluster of ``jobs`` single-threaded worker processes)."""
    from distributed import Client, LocalCluster
    # cancelled leftovers at the end are expected: keep them out of the output
    logging.getLogger("distributed").setLevel(logging.ERROR)
    cluster = (LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                            dashboard_address=None, silence_logs=logging.ERROR)
               if scheduler == "local" else None)
    try:
        with Client(cluster if cluster is not None else scheduler) as client:
            yield client
    finally:
        if cluster is not None:
            cluster.close()


def pool_map(fn: Callable[[Any], Any], items: Iterable[Any], jobs: int = 1,
             scheduler: str | None = None) -> Iterator[Any]:
    """``fn(item)`` for every item, as each finishes."""
    items = list(items)
    if scheduler is not None:
        from distributed import as_completed as dask_completed
        with dask_client(scheduler, jobs) as client:
            for f in dask_completed(client.map(fn, items, pure=False)):
                yield f.result()
        return
    if jobs <= 1:
        for it in items:
            yield fn(it)
        return
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        for f in as_completed([ex.submit(fn, it) for it in items]):
            yield f.result()

"""Past one machine: `bench`, `run` and `infer` on a Ray cluster (`--cluster ADDRESS`).

    session.py    join (auto, HOST:PORT) or start (local) a cluster for one command
    resources.py  how many cells the nodes run at once (what one holds: Backend.cluster_resource)
    devices.py    which host and device a task got, and the --device its vendor tool takes
    transport.py  models and bins by content: a shared path when every node sees it, else the object store
    schedule.py   cells as Ray tasks: results as they arrive, retries after lost nodes, Ctrl-C
    journal.py    finished cells kept on the driver, so a re-run skips them
    sweep.py      bench: one cell per (precision, batch size)
    shards.py     infer: whole batches in shards over the devices, the layout written here
    adapter.py    the one module that calls into bench/infer internals
    tasks.py      what the nodes run (imports Ray)

Nothing here imports Ray until a session opens: `ssdconvert --help` and every command without
`--cluster` run without it installed.
"""

from ssdconvert.cluster.session import ClusterError, connected, current

__all__ = ["ClusterError", "connected", "current"]

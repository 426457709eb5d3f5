"""RPC implementations by area; importing this package registers them all."""
from . import config_apply, cosi, etcd, events, facts, health, lifecycle, services  # noqa: F401
from . import clock, containers, credentials, files, images, inspect_graph, logs  # noqa: F401
from . import meta, stats, storage_wipe  # noqa: F401

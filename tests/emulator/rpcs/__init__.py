"""RPC implementations by area; importing this package registers them all."""
from . import config_apply, cosi, etcd, events, facts, health, lifecycle, services  # noqa: F401

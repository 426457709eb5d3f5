"""pytest fixture `emulated_cluster`: a factory of started clusters, all stopped at teardown.

    def test_something(emulated_cluster):
        cluster = emulated_cluster(control_planes=3, workers=1, talos_version="1.12.4")
"""
import pytest

from . import EmulatedCluster


@pytest.fixture
def emulated_cluster(tmp_path):
    started = []

    def start_cluster(control_planes=1, workers=0, **options):
        options.setdefault("state_dir", tmp_path / f"emulated-{len(started)}")
        cluster = EmulatedCluster(control_planes=control_planes, workers=workers, **options)
        cluster.start()
        started.append(cluster)
        return cluster

    yield start_cluster
    for cluster in reversed(started):
        cluster.stop()

"""The client knows every RPC the protos declare; READ_ONLY names only real methods and only reads."""
from grpclib.const import Cardinality

from ansible_collections.talos.linux.plugins.module_utils._client import READ_ONLY, rpc_method


def test_every_read_only_name_is_a_declared_method():
    for name in READ_ONLY:
        assert rpc_method(name).read_only, name


def test_new_services_and_shapes_load():
    assert rpc_method("TimeService/Time").path == "/time.TimeService/Time"
    assert rpc_method("InspectService/ControllerRuntimeDependencies").path == \
        "/inspect.InspectService/ControllerRuntimeDependencies"
    assert rpc_method("ImageService/Import").cardinality == Cardinality.STREAM_UNARY
    assert rpc_method("MachineService/Copy").cardinality == Cardinality.UNARY_STREAM
    assert rpc_method("StorageService/BlockDeviceWipe").path == "/storage.StorageService/BlockDeviceWipe"


def test_calls_that_change_a_node_are_not_retried_as_reads():
    for name in ("MachineService/MetaWrite", "MachineService/MetaDelete", "MachineService/Restart",
                 "MachineService/ImagePull", "ImageService/Pull", "ImageService/Import", "ImageService/Remove",
                 "StorageService/BlockDeviceWipe"):
        assert not rpc_method(name).read_only, name

"""Patches on the configuration a node runs converge: an appended list item the list holds is present (issue 10.7)."""

from ansible_collections.talos.linux.plugins.module_utils._config import normalise_config, render_config

CURRENT = """\
version: v1alpha1
machine:
  type: worker
  time: {servers: [time.cloudflare.com]}
  files:
    - {path: /var/etc/a.conf, op: create, permissions: 420, content: "a = 1\\n"}
cluster:
  inlineManifests:
    - {name: ns, contents: "apiVersion: v1\\nkind: Namespace\\nmetadata: {name: x}\\n"}
"""
PATCH = {"machine": {"time": {"servers": ["time.cloudflare.com", "pool.ntp.org"]},
                     "files": [{"path": "/var/etc/a.conf", "op": "create", "permissions": 420, "content": "a = 1\n"}]},
         "cluster": {"inlineManifests": [
             {"name": "ns", "contents": "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n"}]}}


def test_a_patch_on_the_current_config_does_not_append_what_is_there():
    once = render_config(None, [PATCH], current=CURRENT)
    machine = once[0]["machine"]
    assert machine["time"]["servers"] == ["time.cloudflare.com", "pool.ntp.org"]
    assert len(machine["files"]) == 1 and len(once[0]["cluster"]["inlineManifests"]) == 1
    twice = render_config(None, [PATCH], current=once)
    assert normalise_config(twice) == normalise_config(once), "the second run changes nothing"


def test_an_item_equal_in_every_field_is_present_a_different_one_is_appended():
    patch = {"machine": {"files": [{"path": "/var/etc/a.conf", "op": "create", "permissions": 420,
                                    "content": "a = 2\n"}]}}
    files = render_config(None, [patch], current=CURRENT)[0]["machine"]["files"]
    assert [f["content"] for f in files] == ["a = 1\n", "a = 2\n"]


def test_the_same_item_twice_in_one_task_is_added_once():
    patch = {"machine": {"time": {"servers": ["pool.ntp.org"]}}}
    servers = render_config(None, [patch, patch], current=CURRENT)[0]["machine"]["time"]["servers"]
    assert servers == ["time.cloudflare.com", "pool.ntp.org"]


def test_on_a_given_config_patches_append_as_talos_does():
    servers = render_config(CURRENT, [PATCH])[0]["machine"]["time"]["servers"]
    assert servers == ["time.cloudflare.com", "time.cloudflare.com", "pool.ntp.org"]

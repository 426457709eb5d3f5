# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading Talos COSI resources (cosi.resource.State Get and List), always addressed to one node.

Private to the talos.linux collection: it may change in any release. No Ansible import here.
"""

from __future__ import annotations


def yaml_spec(resource):
    """The resource's spec as data: ``yaml_spec`` is the human YAML Talos renders (camelCase keys).

    Go writes it, so it is read with Go's scalar rules: PyYAML's own would turn an unquoted MAC address such
    as 52:54:00:12:34:56 into a base-60 integer.
    """
    from ._config.yamlio import dialect

    text = resource.spec.yaml_spec
    return dialect().load(text) if text else None


async def get_resource(client, node, namespace, resource_type, resource_id, *, timeout=None, rounds=None):
    """One resource, or TalosError(code NotFound) when it does not exist."""
    reply = await client.call("State/Get", {"namespace": namespace, "type": resource_type, "id": resource_id},
                              node=node, timeout=timeout, rounds=rounds)
    return reply.resource


async def list_resources(client, node, namespace, resource_type, *, timeout=None):
    """Every resource of a type on the node, read from the stream as it arrives."""
    request = {"namespace": namespace, "type": resource_type}
    return [reply.resource async for reply in client.stream("State/List", request, node=node, timeout=timeout)]

# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Strategic merge of a patch into machine configuration documents, with the rules Talos applies
(pkg/machinery/config/configpatcher/strategic.go and pkg/machinery/config/merge/merge.go):

- patch documents are matched to documents by (apiVersion, kind, name); an unmatched one is appended;
- mappings merge key by key, recursively;
- a patch value that is null, an empty string or the number 0 leaves the existing value alone (Go's zero
  values); ``false`` does replace;
- lists are appended to, except the fields Talos tags ``merge:"replace"`` (replaced whole) and the lists Talos
  merges item by item on a key (``REPLACED`` and ``KEYED`` below);
- one rule of our own, for patches on the configuration the node runs (``keep_present``): an appended list item
  equal to an item the list already holds is present, not added again, so the same patch converges instead of
  growing the list on every run (Talos itself appends it again);
- a mapping cannot merge into a scalar or a list, nor the other way round.

Talos knows these rules from its Go types; without the types they are written down here as paths.
"""

from __future__ import annotations

from .documents import describe, document_id, type_name
from .errors import ConfigError
from .patch_delete import apply_delete, dotted, split_deletes

ANY = "*"  # a path step through any list item

# Fields tagged merge:"replace" (a list or object in the patch replaces the whole value), by document kind.
REPLACED = {
    # pkg/machinery/config/types/v1alpha1/v1alpha1_types.go
    "v1alpha1": {
        ("cluster", "network", "podSubnets"),
        ("cluster", "network", "serviceSubnets"),
        ("cluster", "apiServer", "auditPolicy"),
    },
    # pkg/machinery/config/types/network/rule_config.go, link_ingress.go, bgp.go
    "NetworkRuleConfig": {("ingress",), ("portSelector", "ports")},
    "NetworkLinkIngressConfig": {("destinationAddresses",)},
    "BGPInstanceConfig": {("advertise",), ("importRoutes",), ("neighbors",)},
    # pkg/machinery/config/types/cri/base_runtime_spec.go
    "CRIBaseRuntimeSpecConfig": {("overrides",)},
    # pkg/machinery/config/types/k8s/: the literal Kubernetes configuration objects
    "KubeAuditPolicyConfig": {("configuration",)},
    "KubeAuthenticationConfig": {("configuration",)},
    "KubeCredentialProviderConfig": {("configuration",)},
}

# Lists whose items are merged by key rather than appended (types with their own Merge method), by document
# kind: path -> the item fields tried in order; the first one the patch item sets picks the item to merge into.
KEYED = {
    "v1alpha1": {
        # NetworkDeviceList.Merge: by interface name, else by device selector
        ("machine", "network", "interfaces"): ("interface", "deviceSelector"),
        # VlanList.Merge
        ("machine", "network", "interfaces", ANY, "vlans"): ("vlanId",),
        # AdmissionPluginConfigList.Merge
        ("cluster", "apiServer", "admissionControl"): ("name",),
    },
    # pkg/machinery/config/types/runtime/extensions/service_config.go: ConfigFileList.Merge
    "ExtensionServiceConfig": {("configFiles",): ("mountPath",)},
}


def strategic_merge(documents, patch_documents, patch_number, keep_present=False):
    """Merge the patch documents into ``documents`` (a list changed in place, and returned).

    ``keep_present``: an appended list item equal to one already in the list is not appended again.

    The patch documents are consumed: their subtrees move into the result. They are merged one after the
    other, as Talos does, so one patch may name the same document twice (the second merges into the result of
    the first). Deletions in a patch document happen before its merge, so a patch can delete a list item or a
    document and add a new one in its place.
    """
    for index, patch_document in enumerate(patch_documents, 1):
        doc_id = document_id(patch_document, index, f"patch {patch_number}")
        deletes, remainder = split_deletes(patch_document, doc_id, patch_number)
        for delete in deletes:
            apply_delete(documents, delete, patch_number)
        if remainder is None:
            continue
        target = next((document for document in documents if document_id(document) == doc_id), None)
        if target is None:
            documents.append(remainder)
            continue
        replaced = REPLACED.get(doc_id[1], ())
        keyed = KEYED.get(doc_id[1], {})
        _merge_mapping(target, remainder, (), (replaced, keyed, keep_present), (patch_number, doc_id))
    return documents


def _merge_mapping(left, right, path, rules, where):
    for key, value in right.items():
        child = path + (key,)
        if left.get(key) is None:
            if value is not None or key not in left:
                left[key] = value
            continue
        left[key] = _merge_value(left[key], value, child, rules, where)


def _merge_value(left, right, path, rules, where):
    replaced, keyed, keep_present = rules
    if right is None:
        return left
    if path in replaced:
        return right
    if isinstance(right, dict):
        if not isinstance(left, dict):
            raise _mismatch(left, right, path, where)
        _merge_mapping(left, right, path, rules, where)
        return left
    if isinstance(right, list):
        if not isinstance(left, list):
            raise _mismatch(left, right, path, where)
        fields = keyed.get(path)
        if fields:
            _merge_keyed(left, right, path, fields, rules, where)
        elif keep_present:
            left.extend(_absent_items(left, right))
        else:
            left.extend(right)
        return left
    if isinstance(left, (dict, list)):
        raise _mismatch(left, right, path, where)
    if right == "" or (type(right) in (int, float) and right == 0):
        return left
    return right


def _absent_items(existing, items):
    """The items not equal to one of ``existing`` nor to an earlier one of ``items``, in order."""
    present = list(existing)
    for item in items:
        if item not in present:
            present.append(item)
            yield item


def _merge_keyed(left, right, path, fields, rules, where):
    item_path = path + (ANY,)
    for item in right:
        if not isinstance(item, dict):
            raise _mismatch([], item, item_path, where, "list items")
        existing = _find_item(left, item, fields)
        if existing is None:
            left.append(item)
        else:
            _merge_mapping(existing, item, item_path, rules, where)


def _find_item(items, patch_item, fields):
    """The item the patch item merges into: matched on the first of ``fields`` the patch item sets. With a
    single key field an unset key matches an unset key (Go compares zero values); with alternatives (interface
    or device selector) an item that sets neither is a new item."""
    for field in fields:
        wanted = _set_value(patch_item.get(field))
        if wanted is not None or len(fields) == 1:
            return next((item for item in items
                         if isinstance(item, dict) and _set_value(item.get(field)) == wanted), None)
    return None


def _set_value(value):
    """A field's value with Go's zero values ("" , 0, empty mapping, unset keys of a selector) as None."""
    if isinstance(value, dict):
        value = {key: item for key, item in value.items() if item not in (None, "")}
        return value or None
    if value in (None, "") or (isinstance(value, int) and not isinstance(value, bool) and value == 0):
        return None
    return value


def _mismatch(left, right, path, where, what=None):
    patch_number, doc_id = where
    location = dotted(part if part != ANY else "[]" for part in path)
    return ConfigError(f"patch {patch_number}: cannot merge {type_name(right)} into {what or type_name(left)} at "
                       f"{location} in {describe(doc_id)}", patch=patch_number, path=location)

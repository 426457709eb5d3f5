"""Which nodes a task addresses, the precedence of the connection options' sources, and impossible values."""

import math

import pytest

from ansible_collections.talos.linux.plugins.module_utils._errors import ConfigError
from ansible_collections.talos.linux.plugins.module_utils._options import (
    argument_spec, fillable_options, with_host_variables)
from ansible_collections.talos.linux.plugins.module_utils._task import (
    CONNECTION_VALUE_CHECKS, refuse_impossible_values, target_nodes)


@pytest.mark.parametrize("params,expected", [
    ({}, None),
    ({"node": None, "nodes": None}, None),
    ({"node": "10.0.0.2"}, ["10.0.0.2"]),
    ({"node": " 10.0.0.2 "}, ["10.0.0.2"]),
    ({"nodes": ["a", "b"]}, ["a", "b"]),
    ({"nodes": ["a"], "node": "ignored, nodes wins"}, ["a"]),
])
def test_the_nodes_a_task_addresses(params, expected):
    assert target_nodes(params) == expected


@pytest.mark.parametrize("params,expected", [
    ({"node": ""}, "node is empty ('')"),
    ({"node": " \t"}, "node is empty (' \\t')"),
    ({"nodes": []}, "nodes is empty ([])"),
    ({"nodes": ["a", " "]}, "nodes is empty at item 1 (' ')"),
    ({"nodes": [], "node": "a"}, "nodes is empty ([])"),
])
def test_an_empty_node_option_is_an_error_not_the_context_nodes(params, expected):
    with pytest.raises(ConfigError) as err:
        target_nodes(params)
    assert str(err.value).startswith(expected) and "Nothing was sent" in str(err.value)


@pytest.mark.parametrize("given,fillable", [
    ({}, {"node", "endpoints", "context", "talosconfig"}),
    ({"nodes": ["a"]}, {"endpoints", "context", "talosconfig"}),
    ({"nodes": []}, {"endpoints", "context", "talosconfig"}),
    ({"talosconfig": "/x"}, {"node"}),
    ({"context": "lab"}, {"node", "talosconfig"}),
    ({"endpoints": ["e"]}, {"node", "context", "talosconfig"}),
    ({"node": None, "talosconfig": None}, {"node", "endpoints", "context", "talosconfig"}),
])
def test_what_a_lower_source_may_still_fill(given, fillable):
    assert fillable_options(given) == fillable


def test_host_variables_fill_what_the_task_left_open_and_nothing_else():
    host = {"node": "10.0.0.5", "endpoints": ["10.0.0.2:50000"], "context": "prod", "talosconfig": "/inv/config"}
    assert with_host_variables({}, host) == host
    assert with_host_variables({"nodes": []}, host) == {"nodes": [], "endpoints": ["10.0.0.2:50000"],
                                                        "context": "prod", "talosconfig": "/inv/config"}
    assert with_host_variables({"talosconfig": "/task/config"}, host) == {
        "talosconfig": "/task/config", "node": "10.0.0.5"}
    assert with_host_variables({"context": "lab"}, host) == {
        "context": "lab", "node": "10.0.0.5", "talosconfig": "/inv/config"}


def test_the_environment_fills_by_the_same_rule():
    def fallbacks(given):
        return {name for name, spec in argument_spec({}, given=given).items() if "fallback" in spec}

    assert fallbacks(None) == {"node", "endpoints", "context", "talosconfig"}
    assert fallbacks({"nodes": ["a"], "talosconfig": "/x"}) == set()
    assert fallbacks({"context": "lab"}) == {"node", "talosconfig"}


@pytest.mark.parametrize("value", [0, 0.0, -1, math.nan, math.inf, -math.inf])
def test_a_timeout_that_cannot_be_right_is_refused_by_name(value):
    with pytest.raises(ConfigError) as err:
        refuse_impossible_values({"timeout": value}, CONNECTION_VALUE_CHECKS)
    assert str(err.value).startswith(f"timeout: {value!r} is refused: ") and "greater than 0" in str(err.value)


@pytest.mark.parametrize("value", [None, 0.5, 30, 600.0])
def test_a_possible_timeout_passes(value):
    refuse_impossible_values({"timeout": value}, CONNECTION_VALUE_CHECKS)


def test_a_core_adds_its_own_checks():
    checks = {**CONNECTION_VALUE_CHECKS, "mode": lambda v: "it must not be world-writable" if v == "0777" else None}
    with pytest.raises(ConfigError, match=r"^mode: '0777' is refused: it must not be world-writable\."):
        refuse_impossible_values({"timeout": 30.0, "mode": "0777"}, checks)

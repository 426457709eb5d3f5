# Copyright (c) talos.linux contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Find and read a talosconfig, choose a context, and decode its endpoints and key material.

Private to the talos.linux collection: it may change in any release. No Ansible import here.
Explicit options always win over the file, and a missing file is never created (talosctl creates one).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import pathlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ._errors import ConfigError

API_PORT = 50000


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int = API_PORT

    def __str__(self):
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass
class ConnectionSettings:
    """Everything needed to reach a cluster; the PEM fields are secrets and never appear in repr()."""

    context: str | None
    endpoints: list
    nodes: list = field(default_factory=list)
    ca_pem: bytes | None = field(default=None, repr=False)
    crt_pem: bytes | None = field(default=None, repr=False)
    key_pem: bytes | None = field(default=None, repr=False)
    path: str | None = None
    insecure: bool = False
    server_name: str | None = None
    # True when no node option was given and ``nodes`` are the talosconfig context's (not named by the task)
    nodes_from_context: bool = False

    def secrets(self):
        """The decoded key material, for callers that must mask it (Ansible no_log values)."""
        out = []
        for pem in (self.ca_pem, self.crt_pem, self.key_pem):
            if pem:
                text = pem.decode("ascii", "replace")
                out.append(text)
                out.append(base64.b64encode(pem).decode())
                out.extend(line for line in text.splitlines() if len(line) > 16 and "-----" not in line)
        return out


ENDPOINT_FORMS = ("Give host, host:port, [ipv6]:port or https://host:port; without a port, 50000 is used "
                  "(443 for an https:// URL, as talosctl does).")


def parse_endpoint(value, source="the endpoints option"):
    """Accept what talosctl accepts: host, host:port, [v6], [v6]:port, bare v6, scheme://host[:port][/].

    As talosctl does (pkg/machinery/client/connection.go), an https:// URL without a port means 443 and
    anything else without a port means 50000. ``source`` names where the value came from, for errors.
    """
    text = str(value).strip()
    if not text:
        raise ConfigError(f"An endpoint in {source} is empty.", hint=ENDPOINT_FORMS)
    if "://" in text:
        try:
            parts = urlsplit(text)
            hostname, port = parts.hostname, parts.port
        except ValueError as exc:  # "Invalid IPv6 URL", "Port out of range 0-65535", ...
            raise ConfigError(f"The endpoint {text!r} in {source} is not a valid URL ({exc}).",
                              hint=ENDPOINT_FORMS) from None
        if not hostname:
            raise ConfigError(f"The endpoint {text!r} in {source} is not a valid URL (it has no host).",
                              hint=ENDPOINT_FORMS)
        return Endpoint(hostname, port or (443 if parts.scheme == "https" else API_PORT))
    try:  # a bare IPv6 address has colons but no port
        return Endpoint(str(ipaddress.IPv6Address(text)))
    except ValueError:
        pass
    if text.startswith("["):
        host, _bracket, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _colon, port = text.partition(":")
    if not host:
        raise ConfigError(f"The endpoint {text!r} in {source} has no host.", hint=ENDPOINT_FORMS)
    if not port:
        return Endpoint(host)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"The endpoint {text!r} in {source} has an invalid port {port!r}.", hint=ENDPOINT_FORMS)
    return Endpoint(host, int(port))


def find_talosconfig(explicit=None, environ=None):
    """The path talosctl would use: explicit, $TALOSCONFIG, $TALOS_HOME/config (absolute), ~/.talos/config."""
    environ = os.environ if environ is None else environ
    if explicit:
        return pathlib.Path(os.path.expanduser(str(explicit)))
    if environ.get("TALOSCONFIG"):
        return pathlib.Path(os.path.expanduser(environ["TALOSCONFIG"]))
    home = environ.get("TALOS_HOME", "")
    if home and os.path.isabs(home):
        return pathlib.Path(home, "config")
    return pathlib.Path(os.path.expanduser("~"), ".talos", "config")


def read_talosconfig(path):
    """Parse the file; every problem becomes a ConfigError that names the path."""
    import yaml

    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"The talosconfig {path} does not exist.",
                          hint="Set the talosconfig option or $TALOSCONFIG to an existing file "
                               "(talosctl gen config writes one).") from None
    except OSError as exc:
        raise ConfigError(f"The talosconfig {path} cannot be read: {exc.strerror}.") from None
    try:
        # libyaml's safe loader when PyYAML has it: a talosconfig is parsed by every task
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"The talosconfig {path} is not valid YAML{where}.") from None
    if not isinstance(data, dict) or not isinstance(data.get("contexts"), dict):
        raise ConfigError(f"The talosconfig {path} has no 'contexts' mapping.",
                          hint="A talosconfig has 'context:' and 'contexts:' keys.")
    return data


def decode_pem(value, what, source):
    """A talosconfig holds base64 of the PEM text; options may also give the PEM itself or a file path."""
    if value is None or value == "":
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    text = str(value).strip()
    if "-----BEGIN" in text:
        return text.encode() + b"\n"
    if "\n" not in text and len(text) < 4096 and os.path.isfile(os.path.expanduser(text)):
        return decode_pem(pathlib.Path(os.path.expanduser(text)).read_text(), what, text)
    try:
        raw = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"The {what} in {source} is neither base64-encoded PEM, PEM text nor a readable file.",
                          hint="talosconfig fields hold base64 of the PEM block.") from None
    if b"-----BEGIN" not in raw:
        raise ConfigError(f"The {what} in {source} decodes from base64 but holds no PEM block.")
    return raw


def load_settings(talosconfig=None, context=None, endpoints=None, nodes=None, ca=None, crt=None, key=None,
                  insecure=False, server_name=None, environ=None):
    """Combine the talosconfig (when one is found or needed) with explicit options, which win."""
    # Options that name everything needed make the file unnecessary, unless it was asked for by name.
    self_sufficient = bool(endpoints) and (insecure or (ca is not None and crt is not None and key is not None))
    path = find_talosconfig(talosconfig, environ)
    data, ctx_name, ctx = None, context, {}
    if talosconfig or not self_sufficient:
        data = read_talosconfig(path)
    if data is not None:
        ctx_name = context or data.get("context")
        if not ctx_name:
            raise ConfigError(f"The talosconfig {path} names no current context.",
                              hint="Set the context option to one of: " + ", ".join(sorted(data["contexts"])) + ".")
        if ctx_name not in data["contexts"]:
            raise ConfigError(f"The talosconfig {path} has no context {ctx_name!r}.",
                              hint="Known contexts: " + (", ".join(sorted(data["contexts"])) or "none") + ".")
        ctx = data["contexts"][ctx_name] or {}
        if not isinstance(ctx, dict):
            raise ConfigError(f"The context {ctx_name!r} in {path} is not a mapping.")
    source = f"context {ctx_name!r} of {path}" if data is not None else "the task options"

    raw_endpoints = list(endpoints or ctx.get("endpoints") or [])
    if ctx.get("target") and not endpoints:  # deprecated single-endpoint key, appended as talosctl does
        raw_endpoints.append(ctx["target"])
    if not raw_endpoints:
        raise ConfigError(f"No endpoints are set in {source}.",
                          hint="Add endpoints to the context (talosctl config endpoint ...) or set the endpoints option.")
    settings = ConnectionSettings(
        context=ctx_name,
        endpoints=[parse_endpoint(e, "the endpoints option" if endpoints else source) for e in raw_endpoints],
        nodes=[str(n) for n in (nodes if nodes is not None else ctx.get("nodes") or [])],
        nodes_from_context=nodes is None and bool(ctx.get("nodes")),
        ca_pem=decode_pem(ca if ca is not None else ctx.get("ca"), "ca", "the ca option" if ca else source),
        crt_pem=decode_pem(crt if crt is not None else ctx.get("crt"), "crt", "the crt option" if crt else source),
        key_pem=decode_pem(key if key is not None else ctx.get("key"), "key", "the key option" if key else source),
        path=str(path) if data is not None else None,
        insecure=bool(insecure),
        server_name=server_name,
    )
    if not insecure and not (settings.crt_pem and settings.key_pem):
        raise ConfigError(f"No client certificate and key in {source}.",
                          hint="Talos requires mutual TLS; use a talosconfig with crt and key, or insecure for a "
                               "node in maintenance mode.")
    return settings

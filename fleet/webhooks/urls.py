"""Which webhook URLs posfleet will call. Operators type them; a URL is never trusted.

Allowed: ``https://`` to a host whose every address is public. ``http://`` only to a
subscription that allows private addresses (loopback, RFC 1918, link-local, unique
local: a receiver inside the acquirer's network, or a test on loopback) — said
explicitly when it is added, by an admin, and audited. Always refused: any other scheme,
credentials in the URL (``user:pass@``), a fragment, a URL over 500 characters, a host
that does not resolve, and — even with private addresses allowed — the unspecified,
multicast and reserved ranges and the cloud metadata address 169.254.169.254.

The check runs when a subscription is added and again before every delivery (a host
that now resolves elsewhere is refused at send time). Redirects are not followed.

>>> check_url("https://hooks.example.com/posfleet", resolve=False)
'https://hooks.example.com/posfleet'
>>> check_url("ftp://x/", resolve=False)
Traceback (most recent call last):
...
fleet.core.errors.InputError: webhook URL: scheme 'ftp': only https (or http to a private receiver)
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from fleet.core.errors import InputError

__all__ = ["check_address", "check_url"]

_METADATA = ipaddress.ip_address("169.254.169.254")


def check_address(address: str, *, allow_private: bool) -> None:
    ip = ipaddress.ip_address(address.split("%", maxsplit=1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    where = "webhook URL"
    if ip.is_unspecified or ip.is_multicast or ip == _METADATA:
        raise InputError(f"address {ip} is never a receiver", where=where)
    local = ip.is_loopback or ip.is_private or ip.is_link_local
    if ip.is_reserved and not local:
        raise InputError(f"address {ip} is never a receiver", where=where)
    if not ip.is_global and not allow_private:
        raise InputError(
            f"address {ip} is private or loopback (add it with private addresses allowed)",
            where=where,
        )


def check_url(url: str, *, allow_private: bool = False, resolve: bool = True) -> str:
    """``url`` if posfleet may call it (see the module's rules), else :class:`InputError`."""
    where = "webhook URL"
    if len(url) > 500:
        raise InputError("longer than 500 characters", where=where)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InputError(f"not a URL: {exc}", where=where) from None
    if parts.scheme not in ("https", "http"):
        raise InputError(
            f"scheme {parts.scheme!r}: only https (or http to a private receiver)", where=where
        )
    if parts.scheme == "http" and not allow_private:
        raise InputError("http is only for a private receiver: use https", where=where)
    if parts.username is not None or parts.password is not None:
        raise InputError(
            "credentials in the URL are refused (the signature authenticates)", where=where
        )
    if parts.fragment:
        raise InputError("a fragment is refused", where=where)
    host = parts.hostname
    if not host:
        raise InputError("no host", where=where)
    if not resolve:
        return url
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError) as exc:
        raise InputError(f"host {host!r} does not resolve: {exc}", where=where) from None
    for info in infos:
        check_address(str(info[4][0]), allow_private=allow_private)
    return url

"""Loaded at interpreter start when this folder is on PYTHONPATH (tests/test_no_network.py):
every socket connection or DNS lookup to anything but loopback raises, and is recorded."""

import os
import socket

_LOG = os.environ.get("JOURNEYREC_NETBLOCK_LOG")
_LOOPBACK = ("127.", "::1", "localhost", "0.0.0.0")


def _record(what: str) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as fh:
            fh.write(what + "\n")


def _is_local(address) -> bool:
    if isinstance(address, (tuple, list)) and address:
        host = str(address[0])
    elif isinstance(address, (str, bytes)):
        return True  # AF_UNIX paths
    else:
        host = str(address)
    return host.startswith(_LOOPBACK)


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def connect(self, address):
    if self.family != socket.AF_UNIX and not _is_local(address):
        _record(f"connect {address}")
        raise OSError(f"network blocked by tests: connect to {address}")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family != socket.AF_UNIX and not _is_local(address):
        _record(f"connect_ex {address}")
        raise OSError(f"network blocked by tests: connect to {address}")
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host is not None and not str(host).startswith(_LOOPBACK):
        _record(f"getaddrinfo {host}")
        raise OSError(f"network blocked by tests: DNS lookup of {host}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo

"""Charset names to Python codecs, safely: what a client or a bounce message declares.

Only character sets are accepted, and only names from a fixed table are ever handed to
:mod:`codecs`: Python caches every spelling it is asked to look up, for the life of the
process, so passing declared names straight to it would let a sender grow that cache
without bound.
"""

from __future__ import annotations

import codecs
import encodings
import encodings.aliases
import functools
import pkgutil
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

#: Python codecs that ``bytes.decode`` accepts but that are not character sets, and why
#: each is refused. (Codecs that are not text encodings at all, such as base64 or zlib,
#: are refused too: ``bytes.decode`` itself refuses them.)
NOT_CHARSETS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "idna": "RFC 3490 domain labels, not text; refuses the error handlers decoding needs",
        "punycode": "RFC 3492 domain labels, not text; raises on malformed input whatever "
        "the error handler",
        "undefined": "Python's codec that raises on every use",
        "unicode-escape": "Python string-literal syntax, not a charset",
        "raw-unicode-escape": "Python string-literal syntax, not a charset",
    }
)
#: Longest charset name looked up (the longest IANA name has 45 characters).
MAX_CHARSET_NAME: Final = 64
_NOT_ALNUM: Final = re.compile(r"[^a-z0-9]")


def _squeeze(name: str) -> str:
    """A charset name reduced to lowercase letters and digits: ``UTF_8`` and ``utf-8`` meet."""
    return _NOT_ALNUM.sub("", name.lower())


def _charset_names() -> dict[str, str]:
    """Every charset name Python knows, squeezed, to its codec module; nothing is imported."""
    names = dict(encodings.aliases.aliases)
    names.update((module.name, module.name) for module in pkgutil.iter_modules(encodings.__path__))
    return {_squeeze(alias): module for alias, module in names.items()}


#: Squeezed charset name (``utf8``, ``iso885915``, ``windows1252``) to Python codec module.
CHARSETS: Final[Mapping[str, str]] = MappingProxyType(_charset_names())


@functools.cache  # bounded: called only with values of CHARSETS
def _codec(module: str) -> str | None:
    """The codec of ``module`` if it is a character set Python can decode incrementally."""
    try:
        codec = codecs.lookup(module).name
        codecs.getincrementaldecoder(codec)
    except LookupError:
        return None
    if codec in NOT_CHARSETS or not _is_text_encoding(codec):
        return None
    return codec


def _is_text_encoding(codec: str) -> bool:
    """Whether ``bytes.decode`` takes ``codec`` (base64, zlib, rot13 ... are refused)."""
    try:
        b"\0\0\0\0".decode(codec, "replace")
    except LookupError:
        return False
    except UnicodeError:  # a text codec all the same
        return True
    return True


def codec_for(charset: str) -> str | None:
    """The Python codec of a declared charset name, or ``None`` when it is not one."""
    module = CHARSETS.get(_squeeze(charset)) if len(charset) <= MAX_CHARSET_NAME else None
    return _codec(module) if module is not None else None

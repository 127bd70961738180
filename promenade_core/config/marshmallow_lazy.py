"""marshmallow, imported without building its e-mail domain pattern up front.

`marshmallow.validate` compiles `Email.DOMAIN_REGEX` at import: a case-insensitive
class over U+00A1-U+FFFF, which takes the regex compiler 35-60 ms to build (sre works
out the case folding of the whole range). That was the largest single step of
`promenade start` before its first spawn (`-X importtime`: 53 ms of about 170 ms of
imports; strace showed the same gap). Promenade validates no e-mail address, so while
marshmallow is imported here, a pattern holding that range becomes a stand-in that
compiles it the first time it is used; every other pattern is compiled at once, as
marshmallow wrote it. Import marshmallow's names from this module, never directly, so
that this import is the first.
"""

from __future__ import annotations

import re
from typing import Any

#: What makes a pattern slow to build.
_WIDE_RANGE = "\u00a1-\uffff"


class DeferredPattern:
    """A compiled pattern built on its first use (any attribute: match, search, …)."""

    def __init__(self, pattern: str, flags: int, compile_now: Any) -> None:
        self._source = (pattern, flags)
        self._compile_now = compile_now
        self._compiled: re.Pattern[str] | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            # Not a pattern's: ABCMeta asks every class attribute for
            # __isabstractmethod__, which must not build the pattern.
            raise AttributeError(name)
        if self._compiled is None:
            self._compiled = self._compile_now(*self._source)
        return getattr(self._compiled, name)


def _import_marshmallow() -> None:
    compile_now = re.compile

    def deferring(pattern: Any, flags: Any = 0) -> Any:
        if isinstance(pattern, str) and _WIDE_RANGE in pattern:
            return DeferredPattern(pattern, flags, compile_now)
        return compile_now(pattern, flags)

    re.compile = deferring
    try:
        import marshmallow  # noqa: F401
    finally:
        re.compile = compile_now


_import_marshmallow()

from marshmallow import (  # noqa: E402
    Schema,
    ValidationError,
    fields,
    validates_schema,
)

__all__ = ["DeferredPattern", "Schema", "ValidationError", "fields", "validates_schema"]

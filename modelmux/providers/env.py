"""``${VAR}`` expansion for provider settings (API keys, URLs, header values).

Only the braced form is expanded; a ``$`` not followed by ``{NAME}`` stays as it is. A missing
variable is a configuration error that names the variable and the setting that wanted it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from modelmux.config.load import ConfigError

_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: str, *, where: str, environ: Mapping[str, str] | None = None) -> str:
    """``value`` with every ``${NAME}`` replaced by that environment variable.

    ``where`` names the setting in error messages, e.g. ``provider 'claude': api_key``.

    Raises:
        ConfigError: a referenced variable is not set.
    """
    env = os.environ if environ is None else environ

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        found = env.get(name)
        if found is None:
            raise ConfigError(f"{where}: environment variable {name} is not set (from ${{{name}}})")
        return found

    return _REFERENCE.sub(substitute, value)

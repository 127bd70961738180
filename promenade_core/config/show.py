"""`promenade config show`: the loaded config as YAML, the way the manager will use it.

After interpolation, override files, `.env` and defaults, a config can differ a lot
from what was typed; this shows the result, with secrets masked exactly as
`GET /api/config` masks them (masking.mask_config), because the output lands in
terminals, CI logs and bug reports.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from promenade_core.config.model import Config
from promenade_core.masking import mask_config, mask_env


def show_document(config: Config) -> dict[str, Any]:
    """What `config show` prints, as plain data: the config's dict (as the API serves
    it), the files merged and `.env`'s values, secrets masked. The JSON round trip
    turns the enums (str subclasses) into plain strings that YAML can write."""
    doc = config.to_dict()
    doc["files"] = [str(path) for path in config.files or (config.path,)]
    doc["dotenv"] = mask_env(dict(config.dotenv_values))
    plain: dict[str, Any] = json.loads(json.dumps(mask_config(doc)))
    return plain


def show_config(config: Config) -> str:
    """The YAML text: keys in the config's own order, block style, Unicode kept."""
    return yaml.safe_dump(show_document(config), sort_keys=False, allow_unicode=True,
                          default_flow_style=False, width=100)

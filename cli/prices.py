"""`netra prices show`: the price versions ledger rows refer to."""

from __future__ import annotations

import argparse
import json

from cli.common import fail, with_session
from core.price_versions import list_price_versions, price_version_json
from core.settings import Settings


def show(args: argparse.Namespace) -> int:
    """List stored price versions, or print one version's table as JSON."""
    settings = Settings()
    if args.version:
        table = with_session(settings, lambda s: price_version_json(s, args.version))
        if table is None:
            return fail(f"no stored price version {args.version!r}; `netra prices show` lists them")
        print(json.dumps(json.loads(table), indent=2))
        return 0
    versions = with_session(settings, list_price_versions)
    for v in versions:
        print(f"{v.version}\teffective {v.effective_from}\tfirst used {v.created_at.isoformat()}")
    if not versions:
        print("no price version stored yet: the gateway stores its table when it starts")
    return 0

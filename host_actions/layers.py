"""The host-side layers certops installs on an IIS host, as standalone scripts.

The canonical sources are host_actions/ps/layers/NAME.ps1; they name shared pieces with
`# certops: include NAME.ps1` lines, like the scripts certops runs over WinRM: a piece only the
layers share lives next to them (ps/layers/layer_common.ps1), the others in ps/include/ (the key
test, which certs.ps1 shares, and report.ps1). `layer_script(name)` is the text a host gets,
every include put in. deploy/windows/ holds the same texts for installing by hand;
`python -m host_actions.layers --check DIR` fails when a copy there is stale, and `--write DIR`
rewrites them.
"""

from __future__ import annotations

import argparse
import sys
from functools import cache
from importlib import resources
from pathlib import Path

from host_actions.scripts import expand_includes

# each one's standalone copy is deploy/windows/NAME.ps1
LAYER_NAMES = ("self-heal", "post-renew")
INCLUDE_FOLDERS = ("ps/layers", "ps/include")


@cache
def layer_script(name: str) -> str:
    """The standalone text of a layer script ("self-heal" is Layer 2, "post-renew" Layer 3)."""
    if name not in LAYER_NAMES:
        raise KeyError(name)
    text = resources.files("host_actions").joinpath(f"ps/layers/{name}.ps1").read_text(encoding="utf-8")
    return expand_includes(text, INCLUDE_FOLDERS)


def stale_copies(folder: Path) -> list[str]:
    """The layer files in `folder` that are missing or differ from layer_script()."""
    stale = []
    for name in LAYER_NAMES:
        path = folder / f"{name}.ps1"
        if not path.is_file() or path.read_bytes() != layer_script(name).encode("utf-8"):
            stale.append(path.name)
    return stale


def write_copies(folder: Path) -> list[str]:
    written = []
    for name in LAYER_NAMES:
        path = folder / f"{name}.ps1"
        data = layer_script(name).encode("utf-8")
        if not path.is_file() or path.read_bytes() != data:
            path.write_bytes(data)
            written.append(path.name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m host_actions.layers", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="DIR", type=Path, help="write the standalone copies into DIR")
    group.add_argument("--check", metavar="DIR", type=Path, help="fail when a copy in DIR is missing or stale")
    args = parser.parse_args(argv)
    if args.write is not None:
        for name in write_copies(args.write):
            print(f"wrote {args.write / name}")
        return 0
    stale = stale_copies(args.check)
    for name in stale:
        print(f"{args.check / name} is stale: run python -m host_actions.layers --write {args.check}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())

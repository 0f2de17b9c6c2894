"""Fuzz every route of a real server from its OpenAPI schema (tests/fuzzing.py), at length.

    python tests/reliability/fuzz_campaign.py [--examples 300] [--seeds 0 1] [--write]

Two models are served (the alphabet and a small prose model); each seed runs
`--examples` generated requests per route in each of three modes (the schema's examples,
valid requests, invalid requests). Any 5xx, undocumented status or content type, or body
that does not match the schema stops the campaign with the failing request.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

from common import CORPORA, REPO, Served, record, train_small

sys.path.insert(0, str(REPO))
from charlm.training import fit
from tests.fuzzing import fuzz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--write", action="store_true", help="add the row to RELIABILITY.md")
    args = parser.parse_args()
    total: Counter[tuple[str, int]] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "checkpoints"
        train_small(root)
        fit(CORPORA / "alphabet.txt", root / "alphabet", plots=False)
        server = Served(root, "--max-generate-length", "500")
        try:
            for seed in args.seeds:
                total += fuzz(server.url, args.examples, seed)
        finally:
            server.stop()
    cases = sum(total.values())
    statuses = Counter[int]()
    for (_, status), n in total.items():
        statuses[status] += n
    spread = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items()))
    routes = len({route for route, _ in total})
    record(
        "fuzz",
        f"| property-based fuzzing from the OpenAPI schema (schemathesis): examples, valid and "
        f"invalid requests to all {routes} routes of a real server | {cases:,} requests | "
        f"0 5xx; every status, content type and body valid against the schema (statuses: "
        f"{spread})",
        write=args.write,
    )


if __name__ == "__main__":
    main()

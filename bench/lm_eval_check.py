"""lm-evaluation-harness against `charlm serve`: its log-likelihoods are charlm's.

    pip install "lm_eval[api]"        # anywhere: its `lm_eval` command is what is run
    python bench/lm_eval_check.py [--lm-eval PATH] [--items 40] [--write]

Trains the notes model (`charlm train corpora/notes.txt`, the tiny preset) into a
temporary directory and serves it. A log-likelihood task is written from local files,
nothing downloaded: each item is a context taken from corpora/notes.txt and the 12
characters that follow it. lm-evaluation-harness runs it through its `local-completions`
model, counting tokens with the server's own tokenizer endpoints
(`tokenizer_backend=remote`: /tokenize, /detokenize, /tokenizer_info; a token is a
character), and logs every item's log-likelihood. The same sums are then computed by the
library (`text_logprobs`, the logs of `Predictor.score`'s probabilities) and compared;
like lm-eval, a context's trailing whitespace counts as the continuation's start.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, free_port, report, wait_ready

from charlm.cli import main as charlm
from charlm.inference import Predictor
from charlm.inference.logprobs import text_logprobs

TASK = """task: charlm_notes_loglikelihood
dataset_path: json
dataset_kwargs:
  data_files:
    test: {items}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{context}}}}"
doc_to_target: "{{{{continuation}}}}"
target_delimiter: ""
metric_list:
  - metric: perplexity
    aggregation: perplexity
    higher_is_better: false
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


def items(n: int) -> list[dict[str, str]]:
    """Contexts of 40 to 160 characters from the corpus, each with the 12 that follow."""
    text = (REPO / "corpora" / "notes.txt").read_text(encoding="utf-8")
    step = (len(text) - 200) // n
    out = []
    for k in range(n):
        start = k * step
        length = 40 + (k * 37) % 120
        out.append(
            {
                "context": text[start : start + length],
                "continuation": text[start + length : start + length + 12],
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lm-eval", default=shutil.which("lm_eval") or "lm_eval")
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--write", action="store_true", help="append the results to BENCHMARKS.md")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ckpts = tmp / "checkpoints"
        charlm(["train", str(REPO / "corpora" / "notes.txt"), "--checkpoints-dir", str(ckpts),
                "--quiet"])  # fmt: skip
        data = items(args.items)
        (tmp / "items.jsonl").write_text("".join(json.dumps(d) + "\n" for d in data))
        tasks = tmp / "tasks"
        tasks.mkdir()
        (tasks / "charlm_notes.yaml").write_text(TASK.format(items=tmp / "items.jsonl"))
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "charlm", "serve", "--checkpoints-dir", str(ckpts),
             "--port", str(port), "--log-level", "warning"],
        )  # fmt: skip
        try:
            wait_ready(port, server)
            started = time.perf_counter()
            subprocess.run(
                [args.lm_eval, "--model", "local-completions", "--model_args",
                 f"model=notes,base_url=http://127.0.0.1:{port}/v1/completions,"
                 "tokenizer_backend=remote,tokenized_requests=True,max_length=4096",
                 "--tasks", "charlm_notes_loglikelihood", "--include_path", str(tasks),
                 "--log_samples", "--output_path", str(tmp / "out")],
                check=True,
            )  # fmt: skip
            took = time.perf_counter() - started
        finally:
            server.terminate()
            server.wait(10)
        samples = [
            json.loads(line)
            for path in (tmp / "out").rglob("samples_charlm_notes_loglikelihood*.jsonl")
            for line in path.read_text().splitlines()
        ]
        predictor = Predictor.from_checkpoint(ckpts / "notes")
        rows, worst = [], 0.0
        for s in sorted(samples, key=lambda s: s["doc_id"]):
            doc = s["doc"]
            theirs = float(s["resps"][0][0][0])
            # lm-eval moves a context's trailing whitespace to the continuation's start
            # (its `_encode_pair`): the same split here.
            start = len(doc["context"].rstrip())
            lp = text_logprobs(predictor, doc["context"] + doc["continuation"], start=start)
            ours = sum(x for x in lp.token_logprobs if x is not None)
            worst = max(worst, abs(theirs - ours))
            rows.append((s["doc_id"], doc, theirs, ours))

    table = ["| item | context (end) | continuation | lm-eval ln p | charlm ln p |",
             "|---:|---|---|---:|---:|"]  # fmt: skip
    for doc_id, doc, theirs, ours in rows[:8]:
        table.append(
            f"| {doc_id} | {json.dumps(doc['context'][-20:])} | {json.dumps(doc['continuation'])} "
            f"| {theirs:.6f} | {ours:.6f} |"
        )
    notes = (
        f"{len(rows)} items (the first 8 shown); largest difference {worst:.2e} nats; "
        f"lm-eval's run took {took:.1f} s against a real `charlm serve` of the notes model "
        "(tiny preset), with `local-completions`, `tokenizer_backend=remote`."
    )
    report("lm-evaluation-harness log-likelihoods against charlm's", "\n".join(table), notes,
           write=args.write)  # fmt: skip
    if worst > 1e-4:
        raise SystemExit(f"lm-eval and charlm disagree by {worst:.2e} nats")


if __name__ == "__main__":
    main()

"""Checkpoints: the only code that reads and writes them.

A checkpoint is a directory:

    checkpoint.json                  the manifest: format version, model and training
                                     configs, vocabulary, training summary, the names of
                                     the two tensor files below, and the run's progress
    weights-<step>-<tag>.safetensors the best-validation model weights (what inference loads)
    resume-<step>-<tag>.safetensors  latest weights, optimiser state, carried LSTM state
                                     and RNG states: what `--resume` needs
    metrics.jsonl                    the training log, one JSON object per line
    .lock                            held while a training run writes the directory

Tensors are stored with safetensors and everything else as JSON, so loading a
checkpoint never unpickles anything. A crash at any point of a save leaves a manifest
that names complete files: the previous checkpoint or the new one.

    manifest.py   checkpoint.json: checked on read (sizes, structure, bounds), atomic write
    tensors.py    safetensors headers checked before any weight is read; atomic writes
    resume.py     the resume record (`Progress`, `ResumeState`) and its on-disk layout
    store.py      `load`, `save`, `resolve`: directories of the three above
    lock.py       one writer per checkpoint directory
"""

from charlm.checkpoint.lock import RunLock
from charlm.checkpoint.manifest import FORMAT_VERSION, MANIFEST, Manifest
from charlm.checkpoint.resume import Progress, ResumeState
from charlm.checkpoint.store import Checkpoint, exists, load, resolve, save

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "Checkpoint",
    "Manifest",
    "Progress",
    "ResumeState",
    "RunLock",
    "exists",
    "load",
    "resolve",
    "save",
]

"""Post 002 as posted, in Keras: information latching with a one-unit LSTM (or simple
RNN), a dense layer of 2 with softmax, Adam, sparse categorical cross-entropy,
`fit(shuffle=True, validation_split=0.2, batch_size=16)`, with charlm's callback added.

The data are built positives first, and Keras's `validation_split` takes the last fifth
as it is given, before any shuffling: the validation set is all class 0. `--fixed`
shuffles the data before `fit`. Run with KERAS_BACKEND=torch. The callback prints its
findings and, when training ends, its report to standard error; the last line of
standard output is the names of the findings it holds, as JSON (`{"findings": [...],
"passed": [...]}`). `--history FILE` adds Keras's `CSVLogger` writing the run's history
there (one row an epoch), `--watch-log FILE` the watcher's own log (JSON Lines).
"""

import argparse
import json

import keras
import numpy as np
from keras.layers import LSTM, Dense, Input, SimpleRNN
from keras.models import Model

from charlm.watcher.keras import WatchCallback

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--fixed", action="store_true")
parser.add_argument("--cell", choices=("lstm", "rnn"), default="lstm")
parser.add_argument("--n", type=int, default=2000)
parser.add_argument("--length", type=int, default=20)
parser.add_argument("--units", type=int, default=1)
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--history")
parser.add_argument("--watch-log")
args = parser.parse_args()
keras.utils.set_random_seed(args.seed)

N, seq_len = args.n, args.length
xs = np.zeros((N, seq_len))
ys = np.zeros(N)
positive_indexes = np.arange(N // 2)
negative_indexes = np.arange(N // 2, N)
xs[positive_indexes, 0] = 1
ys[positive_indexes] = 1
xs[negative_indexes, 0] = -1
ys[negative_indexes] = 0
noise = np.random.normal(loc=0, scale=0.1, size=(N, seq_len))
train_xs = (xs + noise).reshape(N, seq_len, 1)
train_ys = ys
if args.fixed:
    order = np.random.permutation(N)
    train_xs, train_ys = train_xs[order], train_ys[order]

RNN_CELL = LSTM if args.cell == "lstm" else SimpleRNN
inputs = Input(shape=(None, 1), name="input")
rnn = RNN_CELL(args.units, name="rnn")(inputs)
out = Dense(2, activation="softmax", name="output")(rnn)
model = Model(inputs, out)
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])

watch = WatchCallback(
    y=train_ys, validation_split=0.2, log=args.watch_log, name="the latching model"
)
callbacks = [watch]
if args.history:
    callbacks.append(keras.callbacks.CSVLogger(args.history))
model.fit(
    train_xs,
    train_ys,
    epochs=args.epochs,
    shuffle=True,
    validation_split=0.2,
    batch_size=16,
    verbose=0,
    callbacks=callbacks,
)
print(
    json.dumps(
        {
            "findings": [f.name for f in watch.watcher.findings],
            "passed": [f.name for f in watch.watcher.passed],
        }
    )
)

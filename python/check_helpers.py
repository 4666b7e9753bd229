#!/usr/bin/env python3
"""Check from_torch and from_keras end to end: real models, their files, `rnnkit verify`.

    RNNKIT=path/to/rnnkit .venv-torch/bin/python python/check_helpers.py torch
    RNNKIT=path/to/rnnkit .venv-keras/bin/python python/check_helpers.py keras

`torch` (torch, h5py, numpy): a bare bidirectional 2-layer LSTM on lengths (packed), a bare
GRU with an initial state, and a classifier whose forward takes (tokens, lengths), each saved
as a `torch.save` state_dict (the classifier with its model_config JSON). `keras` (tf-keras
and Keras 3): a tf-keras Masking → LSTM model (.h5), a Keras 3 Embedding(mask_zero) →
Bidirectional(GRU) model (.keras), a Keras 3 LSTM given an explicit `mask=` (.keras), and a
Keras 3 TextVectorization model on texts (.keras). Each fixture is written by the helper into
a temporary folder beside its model file and checked with `rnnkit verify` (exit 0), then
with one expected value changed (exit 1). Exits 1 if any check fails.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from rnnkit_fixture import from_keras, from_torch, load_fixture  # noqa: E402

FAILURES = []


def verify(rnnkit, folder, name, model_file, fixture):
    """Saves `fixture` as `<name>.fixture.h5`, runs `rnnkit verify` on it and on a copy with
    one expected value changed; prints the result."""
    path = fixture.save(os.path.join(folder, f"{name}.fixture.h5"))
    model = os.path.join(folder, model_file)
    first = subprocess.run([rnnkit, "verify", model, path], capture_output=True, text=True)
    broken = load_fixture(path)
    broken.expected["output"].flat[0] += 0.01
    broken_path = broken.save(os.path.join(folder, f"{name}.broken.fixture.h5"))
    second = subprocess.run([rnnkit, "verify", model, broken_path], capture_output=True, text=True)
    ok = first.returncode == 0 and second.returncode == 1
    summary = " | ".join(line.strip() for line in first.stdout.splitlines() if line.strip())
    print(f"{'ok  ' if ok else 'FAIL'} {name}: verify exit {first.returncode}, changed "
          f"exit {second.returncode}; {summary}")
    if not ok:
        print(first.stdout + first.stderr + second.stdout + second.stderr)
        FAILURES.append(name)


def check_torch(rnnkit, folder):
    import importlib.util

    import torch
    from torch import nn

    torch.manual_seed(16)
    rng = np.random.default_rng(16)

    # A bare bidirectional 2-layer LSTM on lengths: packed in torch.
    lstm = nn.LSTM(4, 5, num_layers=2, bidirectional=True, batch_first=True)
    torch.save(lstm.state_dict(), os.path.join(folder, "lstm.pt"))
    x = rng.normal(size=(4, 8, 4)).astype(np.float32)
    lengths = [8, 2, 5, 1]
    x[1, 2:] = 7.0  # garbage at padded steps: ignored when packed
    lstm.train()
    fixture = from_torch(lstm, x, lengths=lengths, model="lstm.pt",
                         exercises=["lstm", "bidirectional", "multilayer", "lengths"])
    assert lstm.training, "from_torch restores the training flag"
    assert sorted(fixture.expected) == ["c_n", "h_n", "output"], fixture
    assert np.all(fixture.expected["output"][1, 2:] == 0), "padded outputs are zero (packed)"
    verify(rnnkit, folder, "lstm", "lstm.pt", fixture)

    # A bare GRU with an initial state.
    gru = nn.GRU(3, 6, num_layers=2, batch_first=True)
    torch.save(gru.state_dict(), os.path.join(folder, "gru.pt"))
    h0 = rng.normal(0, 0.5, (2, 3, 6)).astype(np.float32)
    fixture = from_torch(gru, rng.normal(size=(3, 5, 3)).astype(np.float32), h0=h0,
                         model="gru.pt", exercises=["gru", "multilayer", "initial-state"])
    assert sorted(fixture.expected) == ["h_n", "output"], fixture
    verify(rnnkit, folder, "gru", "gru.pt", fixture)

    # A classifier whose forward takes (tokens, lengths), with its model_config: the classes
    # and config writer of fixtures/pytorch/generate.py.
    spec = importlib.util.spec_from_file_location(
        "pytorch_fixture_generator", os.path.join(HERE, "..", "fixtures", "pytorch", "generate.py"))
    base = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(base)
    classifier = base.EmbedBiGRUSoftmax(18, 5, 4, 4)
    torch.save(classifier.state_dict(), os.path.join(folder, "clf.pt"))
    with open(os.path.join(folder, "clf.config.json"), "w") as f:
        f.write(base.model_config(classifier.layout()))
    lengths = [7, 1, 4, 6]
    ids = rng.integers(1, 18, (4, 7))
    ids[np.arange(7)[None, :] >= np.array(lengths)[:, None]] = 0
    classifier.train()
    fixture = from_torch(classifier, torch.from_numpy(ids), lengths=torch.tensor(lengths),
                         model="clf.pt", architecture="clf.config.json",
                         exercises=["gru", "bidirectional", "lengths", "tokens", "model-config"])
    assert classifier.training and classifier.rnn.training
    assert fixture.expected["output"].shape == (4, 4)
    verify(rnnkit, folder, "clf", "clf.pt", fixture)


def check_keras(rnnkit, folder):
    import keras
    import tf_keras

    rng = np.random.default_rng(16)
    lengths = np.array([6, 4, 2])

    def padded(x, value):
        x[np.arange(6)[None, :] >= lengths[:, None]] = value
        return x

    # tf-keras: Masking -> LSTM -> Dense, a legacy .h5 full model.
    L = tf_keras.layers
    model = tf_keras.Sequential([tf_keras.Input((6, 4)), L.Masking(0.0), L.LSTM(4), L.Dense(2)])
    model.save(os.path.join(folder, "tfk_masking.h5"))
    x = padded(rng.normal(size=(3, 6, 4)).astype(np.float32), 0.0)
    fixture = from_keras(model, x, lengths=lengths, model="tfk_masking.h5")
    assert fixture.attributes["generator"] == f"tf-keras {tf_keras.__version__}", fixture
    verify(rnnkit, folder, "tfk_masking", "tfk_masking.h5", fixture)

    # Keras 3: Embedding(mask_zero) -> Bidirectional(GRU) -> Dense, a .keras archive.
    L = keras.layers
    model = keras.Sequential([keras.Input((6,), dtype="int32"), L.Embedding(12, 4, mask_zero=True),
                              L.Bidirectional(L.GRU(3)), L.Dense(2, activation="softmax")])
    model.save(os.path.join(folder, "k3_mask_zero.keras"))
    ids = padded(rng.integers(1, 12, (3, 6)).astype(np.int32), 0)
    fixture = from_keras(model, ids, lengths=lengths, model="k3_mask_zero.keras")
    assert fixture.attributes["generator"] == f"keras {keras.__version__}", fixture
    verify(rnnkit, folder, "k3_mask_zero", "k3_mask_zero.keras", fixture)

    # Keras 3 with no masking layer, given mask=: recorded as /lengths.
    model = keras.Sequential([keras.Input((6, 4)), L.LSTM(5, return_sequences=True), L.Dense(2)])
    model.save(os.path.join(folder, "k3_mask_arg.keras"))
    x = padded(rng.normal(size=(3, 6, 4)).astype(np.float32), 9.0)
    mask = np.arange(6)[None, :] < lengths[:, None]
    fixture = from_keras(model, x, mask=mask, model="k3_mask_arg.keras")
    assert fixture.lengths.tolist() == lengths.tolist(), fixture
    verify(rnnkit, folder, "k3_mask_arg", "k3_mask_arg.keras", fixture)

    # Keras 3 on texts: TextVectorization -> Embedding(mask_zero) -> LSTM -> Dense.
    vectorizer = L.TextVectorization(vocabulary=["the", "movie", "was", "great", "café"])
    model = keras.Sequential([keras.Input((1,), dtype="string"), vectorizer,
                              L.Embedding(7, 4, mask_zero=True), L.LSTM(3), L.Dense(2)])
    model.save(os.path.join(folder, "k3_texts.keras"))
    texts = ["The movie was GREAT!", "Café \U0001F600 unknown words", ""]
    fixture = from_keras(model, np.array([[t] for t in texts], dtype=object), model="k3_texts.keras")
    assert fixture.texts == texts and fixture.inputs is None, fixture
    verify(rnnkit, folder, "k3_texts", "k3_texts.keras", fixture)


def main():
    which = sys.argv[1:] or ["torch", "keras"]
    rnnkit = os.environ.get("RNNKIT") or shutil.which("rnnkit")
    if not rnnkit:
        sys.exit("set RNNKIT to an rnnkit binary")
    folder = tempfile.mkdtemp(prefix="rnnkit-helpers-")
    try:
        for part in which:
            {"torch": check_torch, "keras": check_keras}[part](rnnkit, folder)
    finally:
        shutil.rmtree(folder)
    print(f"{len(FAILURES)} failed" if FAILURES else "all passed")
    sys.exit(1 if FAILURES else 0)


if __name__ == "__main__":
    main()

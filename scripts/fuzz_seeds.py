#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora from the committed fixtures (standard library only).

Usage: fuzz_seeds.py FIXTURES OUT

OUT/<target>/ receives one file per seed, named after its source. The config targets take a
selector byte before the JSON text (see FuzzEntry in Sources/RecurrentKit/Common): it picks
the weights or state_dict the config is planned against, in the same name order FuzzEntry
lists them, so that each seed starts paired with its own weights. JSON attributes are found
in an HDF5 file's bytes (they are stored contiguously) rather than read through HDF5, which
would need h5py.
"""
import json
import os
import sys
import zipfile

# Known to fault inside libhdf5 itself (fixtures/hdf5/README.md): an in-process fuzzer would
# stop on it before fuzzing anything.
LIBRARY_FAULTS = {"global_heap_fault.h5"}


def files(folder, suffix):
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(suffix))


def json_objects(data, key):
    """Every JSON object in `data` (bytes) that has `key` at its top level."""
    decoder = json.JSONDecoder()
    text = data.decode("latin-1")
    found, start = [], text.find("{")
    while start != -1:
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict) and key in value:
            found.append(text[start:end].encode("latin-1"))
            start = text.find("{", end)
        else:
            start = text.find("{", start + 1)
    return found


def write(out, target, name, data):
    folder = os.path.join(out, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as handle:
        handle.write(data)


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def main(fixtures, out):
    hostile = files(os.path.join(fixtures, "hostile"), ".h5")
    models = [p for p in files(os.path.join(fixtures, "pytorch"), ".h5") + files(os.path.join(fixtures, "keras"), ".h5")
              + files(os.path.join(fixtures, "hdf5"), ".h5") + hostile
              if not p.endswith(".fixture.h5") and os.path.basename(p) not in LIBRARY_FAULTS]
    for path in models:
        write(out, "FuzzHDF5Model", os.path.basename(path), read(path))

    fixture_files = [p for p in files(os.path.join(fixtures, "pytorch"), ".fixture.h5")
                     + files(os.path.join(fixtures, "keras"), ".fixture.h5") + hostile
                     if os.path.basename(p) not in LIBRARY_FAULTS]
    for path in fixture_files:
        write(out, "FuzzFixture", os.path.basename(path), read(path))

    archives = files(os.path.join(fixtures, "keras"), ".keras")
    for path in archives + files(os.path.join(fixtures, "hostile"), ".keras"):
        write(out, "FuzzKerasArchive", os.path.basename(path), read(path))

    # PyTorch's own files, wherever the fixtures keep them (unit folders included).
    for root, _, names in sorted(os.walk(fixtures)):
        for name in sorted(names):
            path = os.path.join(root, name)
            seed = os.path.relpath(path, fixtures).replace(os.sep, "_")
            if name.endswith((".pt", ".pth")):
                write(out, "FuzzTorchFile", seed, read(path))
            elif name.endswith(".safetensors"):
                write(out, "FuzzSafetensors", seed, read(path))

    # Keras configs: each archive's config.json with its own weights (selector = its index);
    # each HDF5 model's model_config with the archive of the same case, or with none.
    cases = [os.path.basename(p)[len("k3_"):-len(".keras")] if os.path.basename(p).startswith("k3_") else None
             for p in archives]
    for index, path in enumerate(archives):
        try:
            with zipfile.ZipFile(path) as archive:
                config = archive.read("config.json")
        except (zipfile.BadZipFile, KeyError):
            continue
        write(out, "FuzzKerasConfig", os.path.basename(path) + ".json", bytes([index]) + config)
    for path in files(os.path.join(fixtures, "keras"), ".h5"):
        if path.endswith(".fixture.h5"):
            continue
        name = os.path.basename(path)
        case = name.split("_", 1)[1].split(".")[0] if "_" in name else None
        selector = cases.index(case) if case in cases else len(archives)
        for number, config in enumerate(json_objects(read(path), "class_name")[:1]):
            write(out, "FuzzKerasConfig", f"{name}.{number}.json", bytes([selector]) + config)

    # PyTorch model_configs, each with its own state_dict (selector = its index among the
    # files that carry one).
    configured = []
    for path in files(os.path.join(fixtures, "pytorch"), ".h5"):
        if path.endswith(".fixture.h5"):
            continue
        configs = json_objects(read(path), "modules")
        if configs:
            configured.append((path, configs[0]))
    for index, (path, config) in enumerate(configured):
        write(out, "FuzzPyTorchModelConfig", os.path.basename(path) + ".json", bytes([index]) + config)


    # verify --manifest files: the CI example's YAML manifest, and JSON and YAML forms of a
    # manifest over the committed PyTorch fixtures (selector byte: even YAML, odd JSON).
    example = os.path.join(os.path.dirname(os.path.abspath(fixtures)), "examples", "ci", "rnnkit-verify.yml")
    if os.path.isfile(example):
        write(out, "FuzzManifest", "rnnkit-verify.yml", bytes([0]) + read(example))
    entries = []
    for path in files(os.path.join(fixtures, "pytorch"), ".fixture.h5")[:3]:
        name = os.path.basename(path)
        entries.append({"name": name[: -len(".fixture.h5")], "model": name.replace(".fixture.h5", ".h5"),
                        "fixture": name, "atol": 1e-5, "rtol": 1e-4})
    write(out, "FuzzManifest", "cases.json", bytes([1]) + json.dumps({"cases": entries}).encode())
    write(out, "FuzzManifest", "list.json", bytes([1]) + json.dumps(entries).encode())
    yaml = "".join(f"- model: {e['model']}\n  fixture: '{e['fixture']}'\n  atol: 1.0e-5\n" for e in entries)
    write(out, "FuzzManifest", "list.yml", bytes([0]) + yaml.encode())
    write(out, "FuzzManifest", "anchors.yml", bytes([0]) + b"base: &b {atol: 1e-5}\ncases:\n  - *b\n")
    # Aliases in key position with no ':' after them (fixtures/hostile, issue 26), and short
    # forms of each place an alias or anchor can stand, for the mutator to recombine.
    for path in files(os.path.join(fixtures, "hostile"), ".manifest.yaml"):
        write(out, "FuzzManifest", os.path.basename(path), bytes([0]) + read(path))
    for number, form in enumerate([b"a: &a x\ncases: [ { *a } ]\n", b"a: &a x\ncases: [ {? *a} ]\n",
                                   b"a: &a [x]\ncases:\n  - ? *a\n    : 1\n", b"cases: [ [*a]: x ]\n",
                                   b"cases: !!map {&k model: m.h5, fixture: *k}\n"]):
        write(out, "FuzzManifest", f"alias_forms_{number}.yml", bytes([0]) + form)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    main(sys.argv[1], sys.argv[2])

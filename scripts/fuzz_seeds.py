#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora from the committed fixtures (standard library only).

Usage: fuzz_seeds.py FIXTURES OUT

OUT/<target>/ receives one file per seed, named after its source. The config targets take a
selector byte before the JSON text (see FuzzEntry in Tests/Fuzz/FuzzEntryPoints): it picks
the weights or state_dict the config is planned against, in the same name order FuzzEntry
lists them, so that each seed starts paired with its own weights. JSON attributes are found
in an HDF5 file's bytes (they are stored contiguously) rather than read through HDF5, which
would need h5py.
"""
import io
import json
import os
import struct
import sys
import zipfile
import zlib

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


# Values fed to every ZIP64 field (issue 26): 0, 1, 2^31, 2^32, 2^53, 2^63-1, 2^64-1.
EXTREMES = [0, 1, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 63 - 1, 2 ** 64 - 1]


def zip64_form(data, deflate=False, field=None, value=None):
    """The zip `data` re-packed with every ZIP64 record (local and central ZIP64 extra fields
    with the 32-bit sizes and offset escaped, a ZIP64 end record and locator, the end record
    escaped), members deflated when `deflate`; with `field`, that field of every member's
    central ZIP64 extra ("size", "compressed size", "offset") or of the ZIP64 end record
    ("count", "directory size", "directory offset") set to `value`. None for a zip that
    zipfile cannot read."""
    try:
        with zipfile.ZipFile(__import__("io").BytesIO(data)) as archive:
            members = [(info.filename, archive.read(info)) for info in archive.infolist()]
    except Exception:  # zipfile fails in many ways on the hostile archives (OverflowError at 2^63)
        return None
    out, central = bytearray(), bytearray()
    for name, content in members:
        encoded, crc, stored = name.encode(), zlib.crc32(content), content
        if deflate:
            compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
            stored = compressor.compress(content) + compressor.flush()
        method, offset = (8 if deflate else 0), len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 45, 0x800, method, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                           len(encoded), 20) + encoded + struct.pack("<2H2Q", 1, 16, len(content), len(stored)) + stored
        values = {"size": len(content), "compressed size": len(stored), "offset": offset}
        if field in values:
            values[field] = value
        extra = struct.pack("<2H3Q", 1, 24, values["size"], values["compressed size"], values["offset"])
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 0x31E, 45, 0x800, method, 0, 0x21, crc, 0xFFFFFFFF,
                               0xFFFFFFFF, len(encoded), len(extra), 0, 0, 0, 0o100644 << 16, 0xFFFFFFFF) + encoded + extra
    directory, record = len(out), len(out) + len(central)
    end = {"count": len(members), "directory size": len(central), "directory offset": directory}
    if field in end:
        end[field] = value
    out += central + struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, end["count"], end["count"],
                                 end["directory size"], end["directory offset"])
    out += struct.pack("<4sLQL", b"PK\x06\x07", 0, record, 1)
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return bytes(out)


def zip64_seeds(out, target, paths):
    """Each archive of `paths` in ZIP64 form (stored and deflated, alternately), and the
    first that zipfile reads with each extreme value in each ZIP64 field."""
    readable = []
    for number, path in enumerate(paths):
        form = zip64_form(read(path), deflate=number % 2 == 1)
        if form is not None:
            write(out, target, "zip64_" + os.path.basename(path), form)
            readable.append(path)
    for field in ["size", "compressed size", "offset", "count", "directory size", "directory offset"]:
        for value in EXTREMES if readable else []:
            write(out, target, f"zip64_{field.replace(' ', '_')}_{value}",
                  zip64_form(read(readable[0]), field=field, value=value))


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

    # The archives in ZIP64 form, and with the extreme values in their ZIP64 fields.
    zip64_seeds(out, "FuzzKerasArchive", archives)

    # An adapted vocabulary whose lines end in every separator Keras splits at (the line
    # splitter and the lookup table of issue 26), and one repeating a token.
    lesson = os.path.join(fixtures, "keras", "k3_text_lesson.keras")
    if os.path.exists(lesson):
        lines = (b"\n[UNK]\nthe\r\nwas\rgreat\x0bfilm\x0cterrible\x1cstory\x1dmovie\x1eand\xc2\x85a"
                 b"\xe2\x80\xa8loved\xe2\x80\xa9long\xc2\xa2\xe2\x80\xa6\n\n")
        for name, vocabulary in (("separators", lines), ("repeated", lines.rstrip(b"\n") + b"\nthe\n")):
            image = io.BytesIO()
            with zipfile.ZipFile(lesson) as source, zipfile.ZipFile(image, "w") as target:
                for info in source.infolist():
                    data = source.read(info)
                    if info.filename.endswith("vocabulary.txt"):
                        data = vocabulary
                    target.writestr(info, data)
            write(out, "FuzzKerasArchive", f"k3_text_lesson_vocabulary_{name}.keras", image.getvalue())

    # PyTorch's own files, wherever the fixtures keep them (unit folders included).
    torch_files = []
    for root, _, names in sorted(os.walk(fixtures)):
        for name in sorted(names):
            path = os.path.join(root, name)
            seed = os.path.relpath(path, fixtures).replace(os.sep, "_")
            if name.endswith((".pt", ".pth")):
                write(out, "FuzzTorchFile", seed, read(path))
                torch_files.append(path)
            elif name.endswith(".safetensors"):
                write(out, "FuzzSafetensors", seed, read(path))
            elif name.endswith(".onnx"):
                write(out, "FuzzONNX", seed, read(path))
    zip64_seeds(out, "FuzzTorchFile", sorted(torch_files, key=lambda p: (os.path.getsize(p), p)))

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

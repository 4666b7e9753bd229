/// The formats rnnkit reads and writes, in one list: the one place that names them.
///
/// The precedence is explicit: a file's bytes are tried against every format's signatures
/// in increasing rank (`FormatSignature.rank`; rules of equal rank in this list's order),
/// and the first that holds decides the container; among the formats of that container,
/// the first in this list that claims the file reads it (`ModelFormat.claims(_:)`: Keras
/// HDF5 before the PyTorch state_dict in HDF5, which claims every other HDF5 file).
/// spec/architecture.md, "Which container" and "How to add a format".
package enum Formats {
    /// Every format, in precedence order.
    package static let all: [any ModelFormat] = [
        TorchSaveFormat(),
        SafetensorsFormat(),
        KerasHDF5Format(),
        PyTorchHDF5Format(),
        KerasArchiveFormat(),
        ONNXFormat(),
    ]

    /// The refusal of a file no rule recognises: what rnnkit reads, one line after the
    /// file's name (a format that reads adds itself here).
    static let unrecognizedRefusal = "is none of the files rnnkit reads (HDF5: a PyTorch state_dict or a Keras model or weights; a Keras 3 .keras archive; a torch.save .pt/.pth file; a safetensors file): its first bytes match none of them"

    /// The refusal of a zip no format claims (`otherZip`).
    static let otherZipRefusal = "is a zip archive, but neither a Keras 3 .keras archive (config.json) nor a torch.save file (data.pkl)"

    /// The registry's own rule: a zip archive no format's rule claimed (rank 29, after the
    /// zip formats' 20–28) is refused as one, not tried as anything else.
    static let otherZip = FormatSignature(rank: 29, name: "any other zip archive") { $0.isZip }

    /// Every rule in the order it is tried, with the form it decides.
    static let rules: [(signature: FormatSignature, form: ModelFileForm)] = {
        var rules: [(signature: FormatSignature, form: ModelFileForm)] = []
        for format in all {
            for signature in format.signatures
            where !rules.contains(where: { $0.signature.rank == signature.rank && $0.form == .container(format.container) }) {
                rules.append((signature, .container(format.container)))
            }
        }
        rules.append((otherZip, .otherZip))
        // A stable sort: equal ranks keep the list's order.
        return rules.enumerated().sorted { ($0.element.signature.rank, $0.offset) < ($1.element.signature.rank, $1.offset) }
            .map(\.element)
    }()

    /// The form of `source`: the first rule that holds, or `.unrecognized`.
    static func form(of source: FormatSource) throws -> ModelFileForm {
        try source.withProbe { probe in
            let input = SignatureInput(probe: probe, head: try probe.bytes(at: 0, count: 16),
                                       listing: { try source.zipNames() })
            for rule in rules where try rule.signature.holds(input) {
                return rule.form
            }
            return .unrecognized
        }
    }

    /// The format named `name` (`ModelFormat.name`), nil for none.
    package static func named(_ name: String) -> (any ModelFormat)? {
        all.first { $0.name == name }
    }

    /// The container `source`'s bytes are, nil for a form no format reads (a zip no format
    /// claims, bytes no rule recognises).
    package static func container(of source: FormatSource) throws -> ModelContainer? {
        try form(of: source).container
    }

    /// Reads `source`'s container alone, for a format whose file is a state_dict (its
    /// tensors and attributes, not yet the layout); nothing for another format.
    package static func readContainer(_ format: any ModelFormat, _ source: FormatSource, key: String? = nil) throws {
        guard let format = format as? any StateDictFormat else { return }
        _ = try format.stateDict(source, key: key)
    }

    /// The formats whose files are kept in `container`, in precedence order.
    static func formats(of container: ModelContainer) -> [any ModelFormat] {
        all.filter { $0.container == container }
    }

    /// The format that reads `source`: its form, then the first format of that container
    /// that claims it. Throws the refusal of a form no format reads.
    package static func format(of source: FormatSource) throws -> any ModelFormat {
        try format(of: source, form: try form(of: source))
    }

    private static func format(of source: FormatSource, form: ModelFileForm) throws -> any ModelFormat {
        guard let container = form.container else {
            throw ModelError(.unreadableFile, file: source.file, message: form.refusal ?? form.title)
        }
        for format in formats(of: container) where try format.claims(source) {
            return format
        }
        throw ModelError(.unreadableFile, file: source.file, message: ModelFileForm.unrecognized.refusal ?? "")
    }

    /// Reads `source` with the format that claims it, after the one check of the options
    /// given: first against every format of the file's container (before the file is
    /// opened), then against the format that claims it.
    package static func read(_ source: FormatSource, options: ReadOptions) throws -> ModelReading {
        let form = try form(of: source)
        let candidates = form.container.map(formats(of:)) ?? []
        // A form no format reads takes what every file takes (an architecture, modules) and
        // is then refused as what it is.
        let taken = candidates.isEmpty ? [.architecture, .modules] : candidates.reduce(into: Set<ReadOption>()) { $0.formUnion($1.readOptions) }
        try options.check(taken: taken, title: { option in candidates.first?.title(refusing: option) ?? form.title },
                          file: source.file)
        let format = try format(of: source, form: form)
        try options.check(taken: format.readOptions, title: format.title(refusing:), file: source.file)
        return try format.read(source, options: options)
    }

    /// The format a conversion to `target` writes for an output named `output` (by its
    /// extension, case-insensitive); nil when none of the target's formats takes it.
    package static func writing(_ target: ConversionTarget, output: String) -> (any ModelFormat)? {
        let name = output.split(separator: "/").last.map(String.init) ?? output
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return nil }
        let ext = name[name.index(after: dot)...].lowercased()
        return all.first { $0.writing?.target == target && $0.writing?.extensions.contains(ext) == true }
    }

    /// The extensions a conversion to `target` takes, in precedence order, for messages
    /// (`.pt, .pth, .safetensors, .h5 or .hdf5`).
    package static func extensions(of target: ConversionTarget) -> String {
        let all = all.compactMap { $0.writing?.target == target ? $0.writing?.extensions : nil }.flatMap { $0 }.map { "." + $0 }
        guard let last = all.last else { return "" }
        return all.count == 1 ? last : all.dropLast().joined(separator: ", ") + " or " + last
    }
}

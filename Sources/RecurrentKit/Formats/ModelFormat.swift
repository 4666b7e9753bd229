import Foundation
import HDF5

/// A file format rnnkit knows: a container (how the bytes are kept) and the layout of one
/// framework inside it (what the names mean). Each format is one type in its own folder
/// (`Sources/RecurrentKit/Formats/<Name>/`), listed once in ``Formats/all``; nothing outside
/// the registry names the formats (spec/architecture.md, "How to add a format").
///
/// A file is decided in two steps: its bytes (``signatures``, tried in rank order across
/// every format; the first that holds names the file's container), then, among the formats
/// of that container in ``Formats/all``'s order, the first that ``claims(_:)`` it (an HDF5
/// file's attributes say Keras or PyTorch).
package protocol ModelFormat: Sendable {
    /// A stable name for tests and messages about the registry (`pytorch-hdf5`).
    var name: String { get }
    /// The layouts its reads report (a Keras HDF5 file: Keras 2 or 3 full model, weights),
    /// the first its usual one; they share one container and one framework.
    var layouts: [Layout] { get }
    /// The byte rules that recognise its container, each with its rank in the precedence
    /// (``FormatSignature``). Formats that share a container share its rules.
    var signatures: [FormatSignature] { get }
    /// For a file its container's rules recognised: whether it is this format. A container
    /// that several formats share is told apart here (Keras attributes in an HDF5 file);
    /// ``Formats/all``'s order decides between formats that would both claim a file.
    /// The default claims every file of its container.
    func claims(_ source: FormatSource) throws -> Bool
    /// The read options it takes; any other option given is refused by one check
    /// (``ReadOptions/check(taken:title:file:)``) before the file is read.
    var readOptions: Set<ReadOption> { get }
    /// How the refusal of `option` names a file of this format ("this file is …").
    func title(refusing option: ReadOption) -> String
    /// Reads the file into the neutral model with what `inspect` shows of it.
    func read(_ source: FormatSource, options: ReadOptions) throws -> ModelReading
    /// True when the file is weights that need an architecture given beside them and carry
    /// none (``LoadedModel/needsArchitecture(_:key:)``). The default is false.
    func needsArchitecture(_ source: FormatSource, key: String?) throws -> Bool
    /// How a conversion writes it; nil for a format that is not a conversion target.
    var writing: FormatWriting? { get }
}

extension ModelFormat {
    /// The container its files are kept in (its layouts').
    package var container: ModelContainer { layouts[0].container }
    /// The framework whose layout it holds (its layouts').
    package var framework: ModelFramework { layouts[0].framework }
    package func claims(_ source: FormatSource) throws -> Bool { true }
    package func needsArchitecture(_ source: FormatSource, key: String?) throws -> Bool { false }
    package var writing: FormatWriting? { nil }
    package func title(refusing option: ReadOption) -> String { container.fileTitle }
}

/// A format whose file is a PyTorch state_dict: what `inspect` lists for a state_dict that
/// needs a `model_config`, and whether one is needed, come from its tensors.
protocol StateDictFormat: ModelFormat {
    /// The file's state_dict (a checkpoint's entry `key`), its tensors and attributes.
    func stateDict(_ source: FormatSource, key: String?) throws -> TensorContainer
}

extension StateDictFormat {
    /// The layout a state_dict of this format is shown as.
    var layout: Layout { layouts[0] }

    func needsArchitecture(_ source: FormatSource, key: String?) throws -> Bool {
        try PyTorchReader.needsArchitecture(try stateDict(source, key: key))
    }

    /// Reads the state_dict as the PyTorch layout: a `model_config` given, its own, modules
    /// picked by key prefix, or one bare module.
    func readStateDict(_ source: FormatSource, options: ReadOptions) throws -> ModelReading {
        try PyTorchReader.read(try stateDict(source, key: options.key), layout: layout,
                               architecture: try LoadedModel.pytorchArchitecture(options.architecture), modules: options.modules)
    }
}

/// One rule on a file's bytes that recognises a container, and where it stands: the
/// registry tries every format's rules in increasing `rank` (rules of equal rank in
/// ``Formats/all``'s order), and the first that holds decides the file's form.
///
/// The ranks in use are listed in spec/architecture.md, "Which container".
package struct FormatSignature: Sendable {
    package var rank: Int
    /// What the rule recognises, for tests and the spec (`HDF5 signature at 0`).
    package var name: String
    package var holds: @Sendable (SignatureInput) throws -> Bool

    package init(rank: Int, name: String, holds: @escaping @Sendable (SignatureInput) throws -> Bool) {
        self.rank = rank
        self.name = name
        self.holds = holds
    }

    /// A zip whose member names `members` accepts (a zip the zip reader refuses holds none).
    package static func zip(rank: Int, name: String, members: @escaping @Sendable ([String]) -> Bool) -> FormatSignature {
        FormatSignature(rank: rank, name: name) { input in
            guard input.isZip, let names = try input.zipNames() else { return false }
            return members(names)
        }
    }
}

/// What a signature looks at: the file's size and bytes at any offset, its first 16 bytes,
/// and, for a zip, its member names (from the one zip reader, `ZipArchive`).
package struct SignatureInput {
    package let probe: FileProbe
    /// The first 16 bytes (fewer in a shorter file).
    package let head: [UInt8]
    private let listing: () throws -> [String]?

    init(probe: FileProbe, head: [UInt8], listing: @escaping () throws -> [String]?) {
        self.probe = probe
        self.head = head
        self.listing = listing
    }

    /// True when the file starts with a zip local header, `PK\x03\x04`.
    package var isZip: Bool { head.starts(with: [0x50, 0x4B, 0x03, 0x04]) }

    /// A zip's member names; nil for a zip the zip reader refuses when reading bytes in
    /// memory (a file on disk throws the reader's refusal).
    package func zipNames() throws -> [String]? { try listing() }
}

/// The read options of `LoadedModel.init(contentsOf:architecture:key:modules:weightsMatching:)`.
package enum ReadOption: Hashable, Sendable, CaseIterable {
    /// An architecture given beside the file (`architecture:`).
    case architecture
    /// A `torch.save` checkpoint's entry (`key:`).
    case key
    /// Modules picked by key prefix (`modules:`).
    case modules
    /// Weights paired with the architecture by layer name (`weightsMatching: .name`).
    case weightsMatching
}

/// The read options given, as one value.
package struct ReadOptions: Sendable {
    package var architecture: String?
    package var key: String?
    package var modules: [String]?
    package var weightsMatching: KerasWeightsMatching = .order

    package init(architecture: String? = nil, key: String? = nil, modules: [String]? = nil,
                 weightsMatching: KerasWeightsMatching = .order) {
        self.architecture = architecture
        self.key = key
        self.modules = modules
        self.weightsMatching = weightsMatching
    }

    /// The options given, in the order they are checked (a default value is not given).
    var given: [ReadOption] {
        var given: [ReadOption] = []
        if key != nil { given.append(.key) }
        if weightsMatching != .order { given.append(.weightsMatching) }
        if modules != nil { given.append(.modules) }
        if architecture != nil { given.append(.architecture) }
        return given
    }

    /// The one check of read options: the first option given that `taken` lacks is
    /// refused, naming the file as `title(option)` says.
    func check(taken: Set<ReadOption>, title: (ReadOption) -> String, file: String) throws {
        guard let refused = given.first(where: { !taken.contains($0) }) else { return }
        let what = title(refused)
        switch refused {
        case .key:
            throw ModelError(.invalidInput, file: file, message: "\(option: .key) picks a state_dict inside a torch.save checkpoint; this file is \(what)")
        case .weightsMatching:
            throw KerasFile.nameMatchingRefused(file: file, form: what)
        case .modules:
            throw ModelError(.invalidInput, file: file, message: "a selection of modules by key prefix reads a PyTorch state_dict; this file is \(what)")
        case .architecture:
            throw ModelError(.invalidInput, file: file, message: "an architecture given beside a file is for weights that carry none; this file is \(what)")
        }
    }
}

/// A file as the formats see it: its name, its bytes (read as needed) and what the
/// decision opened (a zip's names, an HDF5 file), kept so that nothing is opened twice.
package final class FormatSource {
    /// The file as the caller named it (errors name it).
    package let file: String
    private let bytes: [UInt8]?
    private var openedHDF5: HDF5Container?
    /// A zip's member names, once listed (nil inside: bytes the zip reader refused).
    private var listedNames: [String]??

    /// A file on disk.
    package init(path: String) {
        file = path
        bytes = nil
    }

    /// A file's bytes in memory (fuzzing, tests), named `name` in errors.
    package init(bytes: [UInt8], name: String) {
        file = name
        self.bytes = bytes
    }

    /// The file's bytes when it was given in memory; nil for a file on disk.
    package var image: [UInt8]? { bytes }

    /// Runs `body` on the file's size and bytes at any offset.
    func withProbe<T>(_ body: (FileProbe) throws -> T) throws -> T {
        guard let bytes else { return try InputFiles.withProbe(file, body) }
        return try body(FileProbe(size: bytes.count) { offset, count in
            Array(bytes[min(offset, bytes.count) ..< min(offset + count, bytes.count)])
        })
    }

    /// A zip's member names through the one zip reader: its refusal for a file on disk,
    /// nil for bytes it refuses.
    func zipNames() throws -> [String]? {
        if let listedNames { return listedNames }
        let names: [String]?
        if let bytes {
            names = (try? ZipArchive(bytes: bytes, name: file))?.names
        } else {
            names = try ZipArchive(path: file).names
        }
        listedNames = .some(names)
        return names
    }

    /// The file opened as HDF5 (once; the formats of an HDF5 file share it).
    func hdf5() throws -> HDF5Container {
        if let openedHDF5 { return openedHDF5 }
        let opened = HDF5Container(try bytes.map { try HDF5File.open(image: $0, name: file) } ?? HDF5File.open(file))
        openedHDF5 = opened
        return opened
    }
}

/// How a format is written as a conversion target.
package struct FormatWriting: Sendable {
    /// The conversion target it is written for (`Converter.convert(_:to:output:)`).
    package var target: ConversionTarget
    /// The output extensions that choose it within its target (lowercase, without the dot).
    package var extensions: [String]
    /// Writes the model read from the source into `request.path`.
    package var write: @Sendable (_ request: WriteRequest) throws -> WrittenModel

    package init(target: ConversionTarget, extensions: [String],
                 write: @escaping @Sendable (_ request: WriteRequest) throws -> WrittenModel) {
        self.target = target
        self.extensions = extensions
        self.write = write
    }
}

import ArgumentParser
import Foundation
import RecurrentKit

extension ConversionTarget: ExpressibleByArgument {}

extension PaddingID: ExpressibleByArgument {
    /// An id (a non-negative integer) or `none`.
    public init?(argument: String) {
        if argument == "none" {
            self = .none
        } else if let id = Int(argument), id >= 0 {
            self = .id(id)
        } else {
            return nil
        }
    }

    public var defaultValueDescription: String {
        switch self {
        case let .id(id): return "\(id)"
        case .none: return "none"
        }
    }
}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a model between PyTorch and Keras layouts — exactly, or not at all.",
        discussion: """
        --to pytorch writes a PyTorch state_dict in the container OUTPUT's extension names \
        (.pt/.pth as torch.save writes it, .safetensors, .h5/.hdf5), keeping a PyTorch \
        source's own modules and keys; --to keras a tf-keras (Keras 2) .h5 full model; \
        --to keras3 a Keras 3 .keras archive; --to onnx an ONNX model (.onnx) with one LSTM, GRU \
        or RNN operator per recurrent layer (opset 17 unless --opset says otherwise). The written \
        file is read back with the target's reader and compared with the input, weight for \
        weight, before it is put in place; a conversion that cannot be exact is refused with \
        the layer and the reason, and writes nothing.
        """)

    @Argument(help: "The model to convert.")
    var input: String

    @Argument(help: "The file to write (never an input, by any name; an existing regular file is replaced only with --force).")
    var output: String

    @Option(help: "The target layout: pytorch (.pt, .pth, .safetensors, .h5), keras (tf-keras .h5), keras3 (.keras) or onnx (.onnx).")
    var to: ConversionTarget

    @Option(help: "With --to onnx: the ai.onnx opset to write, 14 to 22 (default 17).")
    var opset: Int?

    @Flag(help: "Replace OUTPUT (and the --emit-python file) if it exists as a regular file.")
    var force = false

    @Option(name: .customLong("emit-python"), help: "With --to pytorch: also write a Python module defining the equivalent torch.nn.Module and a loader.")
    var emitPython: String?

    @Option(name: .customLong("padding-id"), help: ArgumentHelp(
        "With --to keras/keras3, for a PyTorch model on token ids: the id its sequences are right-padded with when it runs on their lengths (packed), or none when it runs over every step, padding included.",
        discussion: "The Keras Embedding then masks that id (mask_zero; an id other than 0 is exchanged with 0 in the table). Needed unless the Embedding's padding_idx is 0.",
        valueName: "id|none"))
    var paddingID: PaddingID?

    @OptionGroup var architecture: ArchitectureOption

    func validate() throws {
        if opset != nil && to != .onnx {
            throw ValidationError("--opset goes with --to onnx")
        }
        if emitPython != nil && to != .pytorch {
            throw ValidationError("--emit-python goes with --to pytorch")
        }
        // The library's rule, checked before anything is read; its options as flags.
        do {
            try Converter.checkOptions(to: to, paddingID: paddingID)
        } catch let error as ModelError {
            throw ValidationError(error.reason.commandLineText)
        }
    }

    func run() throws {
        // The module is written with the converted file, or neither is.
        let report = try Converter.convert(input, to: to, output: output, force: force,
                                           architecture: architecture.architecture, key: architecture.key,
                                           modules: architecture.moduleList, pythonModule: emitPython, paddingID: paddingID,
                                           weightsMatching: architecture.weightsMatching, opset: opset)
        printNotes(report.readingNotes)
        print("wrote \(oneLine(output)) (\(to.rawValue)); read back, it is the same model as \(oneLine(input)), weight for weight")
        for note in report.noteMessages { print("note: \(oneLine(note.commandLineText))") }
        if let emitPython { print("wrote \(oneLine(emitPython))") }
    }
}

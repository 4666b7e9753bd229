import HDF5
import TextSafety

// `ModelError`, the library's one public error, is declared in RecurrentEngine (beside
// `Tensor`, whose initialiser throws it). Here: how the errors of the layers below — HDF5's
// and the engine's — become one at the library's boundary, keeping their cause.

extension ModelError {
    /// Runs `body`, turning any error it throws into a `ModelError`: an HDF5 error keeps its
    /// file, object path and HDF5's own message; an engine error its layer; a `ModelError`
    /// without a file gets `file`. Every public entry point that can fail goes through this.
    ///
    /// - Parameter kind: the kind of an engine error or an error of unknown type here (the
    ///   engine refuses a model as `.invalidModel`, an input as `.invalidInput`).
    package static func boundary<T>(file: String?, kind: Kind, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch {
            throw ModelError(error, file: file, kind: kind)
        }
    }

    /// `error` as a `ModelError` (see `boundary(file:kind:_:)`).
    package init(_ error: any Error, file: String?, kind: Kind) {
        switch error {
        case var error as ModelError:
            if error.file == nil { error.file = file }
            self = error
        case let error as HDF5Error:
            let message = error.message + (error.hdf5Message.map { $0.isEmpty ? "" : " (HDF5: \($0))" } ?? "")
            self.init(Self.kind(of: error.kind), file: error.file, path: error.path, message: message)
        case let error as EngineError:
            switch (error.layerIndex, error.layerKind) {
            case let (index?, layerKind?): self.init(kind, file: file, layer: "\(index) (\(layerKind))", message: error.message)
            case let (index?, nil): self.init(kind, file: file, layer: "\(index)", message: error.message)
            case let (nil, layerKind?): self.init(kind, file: file, message: "\(layerKind): \(error.message)")
            case (nil, nil): self.init(kind, file: file, message: error.message)
            }
        default:
            // Errors of other types already name their file (OutputFiles, archives).
            self.init(kind, file: nil, message: "\(error)")
        }
    }

    private static func kind(of kind: HDF5Error.Kind) -> Kind {
        switch kind {
        case .cannotCreate, .writeFailed: return .unwritableOutput
        case .invalidArgument: return .invalidInput
        case .cannotOpen, .notFound, .wrongKind, .unsupportedType, .implausibleSize, .filterUnavailable,
             .readFailed, .outsideInput:
            return .unreadableFile
        }
    }
}

/// Shapes in messages are written as `[4, 3]`.
func shapeText(_ shape: [Int]) -> String {
    "[" + shape.map(String.init).joined(separator: ", ") + "]"
}

/// Names from a file, as a message lists them: each `escapedForDisplay(_:)`, at most `limit` of them,
/// the rest counted (`a, b, c (and 9997 more)`).
func shownList(_ names: [String], limit: Int = 10) -> String {
    let listed = names.prefix(limit).map { escapedForDisplay($0) }.joined(separator: ", ")
    return names.count > limit ? listed + " (and \(names.count - limit) more)" : listed
}

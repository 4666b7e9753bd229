import Foundation

/// A causal model run over a sequence delivered in chunks: text generation, real-time use.
///
/// Each ``step(_:)`` takes the next chunk `[batch, t, features]` (or token ids `[batch, t]`)
/// and returns that chunk's outputs `[batch, t, outputFeatures]`; the concatenation of the
/// chunks' outputs equals one ``LoadedModel/run(_:lengths:initialStates:threads:)`` over the
/// whole sequence. Masks from masking layers and `mask_zero` embeddings apply per step.
///
/// A stream is mutable and not `Sendable`: use it from one task at a time.
public final class ModelStream {
    /// The model file the stream runs.
    public let file: String
    private let session: StreamingSession
    /// How errors name each layer (`LoadedModel.layerLabel(_:)`).
    private let labels: [String?]

    init(file: String, labels: [String?], session: StreamingSession) {
        self.file = file
        self.labels = labels
        self.session = session
    }

    /// The parallel sequences each chunk holds.
    public var batch: Int { session.batch }

    /// Threads a recurrent layer may use per chunk (as in ``LoadedModel/run(_:lengths:initialStates:threads:)``).
    public var threads: Int { session.threads }

    /// The current state of every recurrent layer, in model order.
    public var states: [RecurrentState] { session.states }

    /// Runs the next chunk and returns its outputs `[batch, t, outputFeatures]`. The state
    /// is updated only when the chunk runs without error.
    public func step(_ chunk: ModelInput) throws -> Tensor {
        try LoadedModel.engineBoundary(file: file, labels: labels) { try session.step(chunk) }
    }

    /// Restarts from `initialStates` (zeros when nil), checked as in ``LoadedModel/run(_:lengths:initialStates:threads:)``.
    public func reset(initialStates: [RecurrentState]? = nil) throws {
        try LoadedModel.engineBoundary(file: file, labels: labels) { try session.reset(initialStates: initialStates) }
    }
}


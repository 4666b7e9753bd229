// Streaming: a causal model fed a long sequence chunk by chunk, carrying state between calls.

extension Engine {
    /// Starts a streaming session for `batch` parallel sequences.
    ///
    /// Only causal models stream: every output step must depend on the steps before it
    /// alone. Throws `EngineError` naming the first layer that is not causal (a bidirectional
    /// `goBackwards` or `reversed` recurrent layer, one with `returnSequences == false`, a readout, a
    /// flatten), or for initial states of the wrong shape. `threads` is as in `run`.
    package func makeStreamingSession(batch: Int, initialStates: [RecurrentState]? = nil,
                                     threads: Int = 1) throws -> StreamingSession {
        if let vectorizer = model.textVectorizer {
            // Its rows are padded per call, so chunks would not add up to one run.
            throw EngineError(layerKind: vectorizer.displayName, message: "cannot stream texts (each call pads its texts to its own length); run the whole texts at once")
        }
        for (index, layer) in model.layers.enumerated() {
            let checker = LayerChecker(index: index, kind: layer.kindName)
            switch layer {
            case .recurrent(let recurrent):
                if recurrent.isBidirectional {
                    throw checker.error("cannot stream a bidirectional layer (its backward direction needs the whole sequence)")
                }
                if recurrent.goBackwards {
                    throw checker.error("cannot stream a goBackwards layer (it needs the whole sequence)")
                }
                if recurrent.reversed {
                    throw checker.error("cannot stream a reversed layer (it runs from the last step)")
                }
                if !recurrent.returnSequences {
                    throw checker.error("cannot stream a layer with returnSequences == false (it emits once per sequence)")
                }
            case .readout:
                throw checker.error("cannot stream a readout (it summarises the whole sequence)")
            case .flatten:
                throw checker.error("cannot stream a flatten (its output size depends on the whole sequence)")
            case .embedding, .masking, .dense, .activation:
                break
            }
        }
        guard batch >= 0 else { throw EngineError(message: "batch \(batch) must not be negative") }
        try checkRunSize(batch: batch, time: nil)
        return StreamingSession(engine: self, batch: batch, states: try preparedLayerStates(initialStates, batch: batch),
                                threads: threads)
    }
}

/// A causal model run over a sequence delivered in chunks.
///
/// Each `step` takes the next chunk `[batch, t, features]` (or token ids `[batch, t]`) and
/// returns that chunk's outputs `[batch, t, outputFeatures]`; the concatenation of the
/// chunks' outputs equals one `Engine.run` over the whole sequence. Masks from `.masking`
/// layers and `maskZero` embeddings apply per step; a masked step carries the state (and,
/// for `.carry` layers, the output) across chunk boundaries like any other step.
///
/// A session is mutable and not `Sendable`: use it from one task at a time.
package final class StreamingSession {
    package let engine: Engine
    package let batch: Int
    /// Threads a recurrent layer may use per chunk (see `Engine.run`).
    package let threads: Int
    var layerStates: [LayerState]

    init(engine: Engine, batch: Int, states: [LayerState], threads: Int) {
        self.engine = engine
        self.batch = batch
        self.threads = threads
        self.layerStates = states
    }

    /// The current state of every recurrent layer, in model order.
    package var states: [RecurrentState] {
        engine.publicStates(layerStates, batch: batch)
    }

    /// Runs the next chunk and returns its outputs `[batch, t, outputFeatures]`.
    ///
    /// The state is updated only when the chunk runs without error.
    package func step(_ chunk: ModelInput) throws -> Tensor {
        let start = try engine.startInput(chunk)
        guard start.batch == batch else {
            throw EngineError(message: "chunk has batch \(start.batch), the session was made for batch \(batch)")
        }
        guard start.time != nil else {
            throw EngineError(message: "chunk has shape \(shapeString(start.shape)), expected [batch, time, features]")
        }
        try engine.checkRunSize(batch: batch, time: start.time)
        var states = layerStates
        let output = try engine.forwardLayers(start, mask: nil, states: &states, threads: threads)
        layerStates = states
        return Tensor(unchecked: output.shape, values: output.values)
    }

    /// Restarts from `initialStates` (zeros when nil), validated as in `Engine.run`.
    package func reset(initialStates: [RecurrentState]? = nil) throws {
        layerStates = try engine.preparedLayerStates(initialStates, batch: batch)
    }
}

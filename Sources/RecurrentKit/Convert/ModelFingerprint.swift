/// What a model computes, with every weight reduced to a digest, in a canonical form that
/// erases exactly the differences the layout rules allow (spec/conversion.md):
///
/// - gate blocks in one canonical order (a relabelling);
/// - biases as the cell adds them (`DirectionWeights.effectiveBiases`, `BiasRule`): their
///   sum `b_ih + b_hh` wherever the two only add up, absent ones as zeros;
/// - a Linear followed by an activation module equals a Dense with that activation;
/// - `return_sequences=False` equals a readout of the last hidden state (or, forward and
///   unidirectional, of the last valid step; both directions' concatenation for a
///   bidirectional layer), and then what is emitted at masked steps does not matter.
///
/// An embedding's `padding_idx` changes no output and is not compared; whether it masks id 0
/// (`mask_zero`) is. A conversion to Keras decides that before it writes (`KerasPadding`)
/// and compares the file with the model so decided.
///
/// Two models with equal fingerprints compute the same function. The converter compares the
/// source's fingerprint with that of the file it wrote, read back by the target's reader;
/// it keeps only the digests, so the source's weights can be released before the written
/// file is read.
struct ModelFingerprint: Equatable {
    enum Entry: Equatable {
        case embedding(vocabulary: Int, dimension: Int, masksZero: Bool, table: UInt64)
        case masking(Float)
        case recurrent(Recurrent)
        case dense(outputs: Int, inputs: Int, activation: Activation, weight: UInt64, bias: UInt64?)
        case activation(Activation)
        case readout(Readout)
        case flatten
    }

    struct Recurrent: Equatable {
        var kind: CellKind
        var inputSize: Int
        var hiddenSize: Int
        var projectionSize: Int?
        var activation: Activation
        var recurrentActivation: Activation?
        var gruResetRule: GRUResetRule?
        var merge: MergeMode?
        var goBackwards: Bool
        var maskedOutput: MaskedOutput?
        var returnSequences: Bool
        /// ONNX's options (`RecurrentLayer.reversed`, `cellActivations`, `clip`, `inputForget`).
        var reversed: Bool = false
        var cellActivations: [CellActivations]? = nil
        var clip: Float? = nil
        var inputForget: Bool = false
        /// Per direction: input weight, recurrent weight, the added biases, GRU's new-gate
        /// recurrent bias, projection, peepholes.
        var directions: [[UInt64?]]
    }

    /// A text front's rules, bounds and vocabulary (the tokens' bytes, in id order); its
    /// name is not compared.
    struct Vectorizer: Equatable {
        var lowercase: Bool
        var stripPunctuation: Bool
        var split: TextVectorizer.Split
        var outputSequenceLength: Int?
        var maxTokens: Int?
        var vocabularySize: Int
        var vocabulary: UInt64

        init(_ vectorizer: TextVectorizer) {
            (lowercase, stripPunctuation, split) = (vectorizer.lowercase, vectorizer.stripPunctuation, vectorizer.split)
            (outputSequenceLength, maxTokens) = (vectorizer.outputSequenceLength, vectorizer.maxTokens)
            vocabularySize = vectorizer.vocabularySize
            // FNV-1a over each token's length and bytes, so token boundaries count.
            var hash: UInt64 = 0xCBF2_9CE4_8422_2325
            func mix(_ word: UInt64) {
                hash ^= word
                hash = hash &* 0x0000_0100_0000_01B3
            }
            for token in vectorizer.vocabulary.prefix(TextVectorizer.firstTokenIndex) {
                mix(UInt64(token.utf8.count) | 1 << 63)
                for byte in token.utf8 { mix(UInt64(byte)) }
            }
            // The vocabulary's own tokens from their buffer, no string made.
            let tokens = vectorizer.tokens
            for position in tokens.indices {
                tokens.withBytes(at: position) { bytes in
                    mix(UInt64(bytes.count) | 1 << 63)
                    for byte in bytes { mix(UInt64(byte)) }
                }
            }
            vocabulary = hash
        }
    }

    var entries: [Entry]
    var takesTokenIDs: Bool
    var vectorizer: Vectorizer?

    init(_ model: Model) {
        takesTokenIDs = model.takesTokenIDs
        vectorizer = model.textVectorizer.map(Vectorizer.init)
        var entries: [Entry] = []
        for layer in model.layers {
            switch layer {
            case let .embedding(embedding):
                entries.append(.embedding(vocabulary: embedding.vocabularySize, dimension: embedding.dimension,
                                          masksZero: embedding.maskZero,
                                          table: digest(embedding.table)))
            case let .masking(value):
                entries.append(.masking(value))
            case let .recurrent(recurrent):
                entries.append(.recurrent(Self.canonical(recurrent)))
            case let .dense(dense):
                entries.append(.dense(outputs: dense.outputSize, inputs: dense.inputSize, activation: dense.activation,
                                      weight: digest(dense.weight), bias: dense.bias.map(digest)))
            case let .activation(activation):
                // A Linear and its activation module are one Dense; linear is no layer at all.
                if activation == .linear { continue }
                if case let .dense(outputs, inputs, .linear, weight, bias)? = entries.last {
                    entries[entries.count - 1] = .dense(outputs: outputs, inputs: inputs, activation: activation,
                                                        weight: weight, bias: bias)
                } else {
                    entries.append(.activation(activation))
                }
            case let .readout(readout):
                if case var .recurrent(last)? = entries.last, last.returnSequences, Self.foldsIntoLastOutput(readout, last) {
                    last.returnSequences = false
                    last.maskedOutput = nil
                    entries[entries.count - 1] = .recurrent(last)
                } else {
                    entries.append(.readout(readout))
                }
            case .flatten:
                entries.append(.flatten)
            }
        }
        self.entries = entries
    }

    /// True when `readout` of a layer's sequence is its output after the last step.
    private static func foldsIntoLastOutput(_ readout: Readout, _ layer: Recurrent) -> Bool {
        let bidirectional = layer.directions.count == 2
        switch readout {
        case .lastHidden: return !bidirectional
        case .lastValidStep: return !bidirectional && !layer.goBackwards
        case .lastHiddenAllDirections: return !bidirectional || layer.merge == .concat
        case .meanOverValidSteps, .maxOverValidSteps, .maxOverAllSteps: return false
        }
    }

    private static func canonical(_ layer: RecurrentLayer) -> Recurrent {
        let order = GateOrders.neutral[layer.kind]
        let hasBias = layer.hasBias
        let directions = layer.directions.map { d -> [UInt64?] in
            // Weights are hashed block by block in the neutral order, without a reordered copy.
            func canonical(_ values: [Float]) -> UInt64 {
                digest(Tensor(unchecked: [values.count], values: values), blocks: d.gateOrder, in: order)
            }
            var digests: [UInt64?] = [digest(d.inputWeight, blocks: d.gateOrder, in: order),
                                      digest(d.recurrentWeight, blocks: d.gateOrder, in: order)]
            // Biases as the cell adds them (`BiasRule`): what a layout may store differently.
            let biases = hasBias ? d.effectiveBiases(layer.biasRule) : nil
            digests.append(biases.map { canonical($0.added) })
            digests.append(biases?.newGateRecurrent.map { digest(Tensor(unchecked: [$0.count], values: $0)) })
            digests.append(d.projection.map(digest))
            digests.append(d.peepholes.map(digest))
            return digests
        }
        let bidirectional = layer.directions.count == 2
        return Recurrent(kind: layer.kind, inputSize: layer.inputSize, hiddenSize: layer.hiddenSize,
                         projectionSize: layer.projectionSize, activation: layer.activation,
                         recurrentActivation: layer.kind == .rnn ? nil : layer.recurrentActivation,
                         gruResetRule: layer.kind == .gru ? layer.gruResetRule : nil,
                         merge: bidirectional ? layer.merge : nil, goBackwards: layer.goBackwards,
                         maskedOutput: layer.returnSequences ? layer.maskedOutput : nil,
                         returnSequences: layer.returnSequences, reversed: layer.reversed,
                         cellActivations: layer.cellActivations, clip: layer.clip, inputForget: layer.inputForget,
                         directions: directions)
    }

    /// A readable account of the first difference, for the error message.
    func firstDifference(from other: ModelFingerprint) -> String {
        if takesTokenIDs != other.takesTokenIDs { return "one takes token ids, the other features" }
        if vectorizer != other.vectorizer {
            return "the text vectorizers differ: \(vectorizer.map { "\($0)" } ?? "none") vs \(other.vectorizer.map { "\($0)" } ?? "none")"
        }
        for (index, (a, b)) in zip(entries, other.entries).enumerated() where a != b {
            return "layer \(index) differs: \(Self.describe(a)) vs \(Self.describe(b))"
        }
        return "\(entries.count) layers vs \(other.entries.count)"
    }

    private static func describe(_ entry: Entry) -> String {
        switch entry {
        case let .recurrent(r):
            return "\(r.kind.rawValue) \(r.inputSize)→\(r.hiddenSize), \(r.directions.count) direction(s), return_sequences \(r.returnSequences)"
        default:
            return "\(entry)".split(separator: "(").first.map(String.init) ?? "\(entry)"
        }
    }
}

/// FNV-1a over a tensor's shape and the bit patterns of its values (with −0 read as +0).
func digest(_ tensor: Tensor) -> UInt64 {
    digest(tensor, blocks: [.cell], in: [.cell])
}

/// The digest of `tensor.reorderingRowBlocks(from: blocks, to: order)`, computed without
/// making that copy.
func digest(_ tensor: Tensor, blocks: [Gate], in order: [Gate]) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325
    func mix(_ word: UInt64) {
        hash ^= word
        hash = hash &* 0x0000_0100_0000_01B3
    }
    for dimension in tensor.shape { mix(UInt64(bitPattern: Int64(dimension))) }
    mix(0xFFFF_FFFF)
    let blockSize = tensor.count / max(blocks.count, 1)
    let permutation = BlockPermutation(from: blocks, to: order) ?? BlockPermutation(identity: max(blocks.count, 1))
    tensor.values.withUnsafeBufferPointer { values in
        for range in permutation.sourceRanges(blockSize: blockSize) {
            for value in values[range] { mix(UInt64(value == 0 ? 0 : value.bitPattern)) }
        }
    }
    return hash
}

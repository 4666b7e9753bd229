import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit

/// Every committed Keras fixture (real tf-keras and Keras 3 outputs) verifies at the
/// default tolerance, and really exercises what its tags claim.
final class KerasFixtureTests: XCTestCase {
    static let cases = ["text_rnn", "text_bilstm", "stacked_bilstm", "lstm_options", "go_backwards", "gru_reset",
                        "bidi_merges", "dense_activations", "flatten_stateful", "functional_masking", "masking_dense", "return_state",
                        "text_lesson", "text_vocab", "text_whole"]
    static let keras3LegacyH5 = ["text_bilstm", "stacked_bilstm", "gru_reset", "bidi_merges", "functional_masking", "text_vocab"]
    static let weightsOnly = ["tfk_stacked_bilstm.legacy-weights", "tfk_stacked_bilstm.weights", "k3_stacked_bilstm.weights",
                              "tfk_lstm_options.to_json", "tfk_keras22_lstm.legacy-weights", "tfk_swapped_dense.legacy-weights",
                              "tfk_swapped_dense.legacy-weights.by-name", "k3_hard_sigmoid.to_json"]

    static var expectedNames: Set<String> {
        Set(cases.map { "tfk_\($0)" } + cases.map { "k3_\($0)" } + keras3LegacyH5.map { "k3h5_\($0)" } + weightsOnly)
    }

    func testEveryFixtureVerifiesAndExercisesItsTags() throws {
        let folder = fixturesFolder.appendingPathComponent("keras")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".fixture.h5") }.map { String($0.dropLast(".fixture.h5".count)) }
        XCTAssertEqual(Set(names), Self.expectedNames, "fixture set changed")
        var tagsSeen = Set<String>()
        for name in names.sorted() {
            let fixture = try Fixture(contentsOf: folder.appendingPathComponent("\(name).fixture.h5").path)
            let modelPath = try XCTUnwrap(fixture.modelPath, name)
            let model = try LoadedModel(contentsOf: modelPath, architecture: fixture.architecturePath,
                                        weightsMatching: fixture.weightsMatching ?? .order)
            let verification = try Verification(model: model, fixture: fixture)
            XCTAssertEqual(verification.atol, 1e-5, name)
            XCTAssertEqual(verification.rtol, 1e-4, name)
            for comparison in verification.comparisons {
                XCTAssertTrue(comparison.passed, "\(name) \(comparison.name): max abs \(comparison.maxAbsoluteError) at \(comparison.firstMismatch ?? [])")
            }
            XCTAssertFalse(fixture.exercises.isEmpty, name)
            for tag in fixture.exercises {
                XCTAssertTrue(try exercised(tag, model: model, fixture: fixture, modelPath: modelPath), "\(name) claims '\(tag)' but the files do not show it")
            }
            tagsSeen.formUnion(fixture.exercises)
            try assertThreadCountsAgree(name, model: model, fixture: fixture)
        }
        // The set as a whole covers every layer and option the Keras issue lists.
        let required = Set([
            "keras2", "keras3", "h5-full", "h5-weights", "keras-weights", "keras-archive", "sequential", "functional",
            "mask-zero", "masking", "mask-value", "mask-middle", "go-backwards", "reset-before", "reset-after",
            "hard-sigmoid", "merge-concat", "merge-sum", "merge-mul", "merge-ave", "dense-3d", "time-distributed",
            "dropout", "global-avg-pool", "global-max-pool", "flatten", "stateful", "unroll", "rnn-relu", "no-bias",
            "masked-features", "return-state",
            "keras22-weights", "weights-in-order", "weights-by-name", "version-from-serialization",
            "activation-layer",
            "texts", "text-vectorization", "vocabulary-assets", "vocabulary-config", "standardize-lower-and-strip-punctuation",
            "standardize-strip-punctuation", "standardize-lower", "split-whitespace", "split-none", "output-sequence-length",
            "pad-to-longest", "oov", "empty-text",
        ] + ["linear", "relu", "tanh", "sigmoid", "softmax", "hard-sigmoid", "elu", "selu", "softplus", "softsign",
             "swish", "gelu"].map { "activation-\($0)" })
        XCTAssertTrue(tagsSeen.isSuperset(of: required), "missing: \(required.subtracting(tagsSeen).sorted())")
    }

    // MARK: Weights-only files paired as Keras's load_weights pairs them

    let keras22Weights = fixture("keras/tfk_keras22_lstm.legacy-weights.h5")
    let keras22Fixture = fixture("keras/tfk_keras22_lstm.legacy-weights.fixture.h5")

    /// A Keras 2.2-style weights file (lstm_1, lstm_2) with the architecture rebuilt in
    /// today's tf-keras (auto-named lstm, lstm_1) says hard_sigmoid: paired in order, as
    /// load_weights() pairs them, it verifies, and inspect shows whose weights each layer took.
    func testKeras22WeightsWithARebuiltArchitectureReadInOrder() throws {
        let model = try LoadedModel(contentsOf: keras22Weights, architecture: fixture("keras/tfk_keras22_lstm.rebuilt.json"))
        XCTAssertEqual(model.kerasVersion, 2)
        XCTAssertEqual(model.notes, [], "the architecture states hard_sigmoid: nothing to note")
        let verification = try Verification(model: model, fixture: Fixture(contentsOf: keras22Fixture))
        XCTAssertTrue(verification.passed, "\(verification.comparisons.map(\.maxAbsoluteError))")
        let pairs = model.summaries.compactMap { summary in
            summary.details.first { $0.0 == "weights_from" }.map { "\(summary.name)←\($0.1)" }
        }
        XCTAssertEqual(pairs, ["lstm←lstm_1", "lstm_1←lstm_2", "dense←dense_1"])
    }

    /// The same file with the architecture rebuilt with today's defaults (sigmoid): it reads
    /// as Keras reads it, the outputs differ from the model the weights belong to, and one
    /// note says why.
    func testKeras22WeightsWithTodaysDefaultsMismatchAndNoteWhy() throws {
        let model = try LoadedModel(contentsOf: keras22Weights, architecture: fixture("keras/tfk_keras22_lstm.defaults.json"))
        XCTAssertEqual(model.notes, [
            "weights written by Keras 2.2.0, whose LSTM default recurrent_activation was hard_sigmoid (sigmoid since 2.3.0); the architecture says sigmoid (lstm, lstm_1): if the model was built with the defaults, rebuild it with recurrent_activation='hard_sigmoid'",
        ])
        let verification = try Verification(model: model, fixture: Fixture(contentsOf: keras22Fixture))
        XCTAssertFalse(verification.passed)
        XCTAssertGreaterThan(verification.comparisons.map(\.maxAbsoluteError).max() ?? 0, 0.01)
    }

    /// By name, the rebuilt architecture's `lstm` has no layer in the file: Keras would leave
    /// it initialised (random), so it is refused, naming the layer and the file's names.
    func testKeras22WeightsByNameAreRefused() throws {
        XCTAssertThrowsError(try LoadedModel(contentsOf: keras22Weights, architecture: fixture("keras/tfk_keras22_lstm.rebuilt.json"),
                                             weightsMatching: .name)) { error in
            let text = "\(error)"
            for fragment in ["layer lstm (LSTM)", "input_1, masking_1, lstm_1, lstm_2, dense_1", "by_name=True", "initialised"] {
                XCTAssertTrue(text.contains(fragment), "\(text) lacks '\(fragment)'")
            }
        }
    }

    /// Dense layers saved as (b, a), read into an architecture with (a, b): in order `a`
    /// takes b's weights (load_weights()), by name its own (by_name=True). Each fixture holds
    /// what tf-keras computed that way, and only the matching pairing passes it.
    func testInOrderAndByNameAreKerassTwoPairings() throws {
        let weights = fixture("keras/tfk_swapped_dense.legacy-weights.h5")
        let architecture = fixture("keras/tfk_swapped_dense.json")
        let inOrder = try Fixture(contentsOf: fixture("keras/tfk_swapped_dense.legacy-weights.fixture.h5"))
        let byName = try Fixture(contentsOf: fixture("keras/tfk_swapped_dense.legacy-weights.by-name.fixture.h5"))
        XCTAssertNil(inOrder.weightsMatching)
        XCTAssertEqual(byName.weightsMatching, .name)
        let ordered = try LoadedModel(contentsOf: weights, architecture: architecture)
        let named = try LoadedModel(contentsOf: weights, architecture: architecture, weightsMatching: .name)
        XCTAssertTrue(try Verification(model: ordered, fixture: inOrder).passed)
        XCTAssertFalse(try Verification(model: ordered, fixture: byName).passed)
        XCTAssertTrue(try Verification(model: named, fixture: byName).passed)
        XCTAssertFalse(try Verification(model: named, fixture: inOrder).passed)
        XCTAssertEqual(named.notes, [])
    }

    /// Paired in order, an error names the architecture's layer and the file's.
    func testInOrderErrorsNameBothLayers() throws {
        let folder = try temporaryFolder(self)
        var root = try loadJSON("keras/tfk_keras22_lstm.rebuilt.json")
        KerasVersionTests.editLayerConfigs(in: &root) { config in
            if config["name"] as? String == "lstm_1" { config["units"] = 4 }
        }
        let path = folder.appendingPathComponent("units.json").path
        try JSONSerialization.data(withJSONObject: root).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try LoadedModel(contentsOf: keras22Weights, architecture: path)) { error in
            XCTAssertTrue("\(error)".contains("layer lstm_1 (LSTM), paired in order with the file's layer lstm_2: kernel has shape [5, 12], expected [5, 16]"), "\(error)")
        }
    }

    /// Different counts of layers with weights are refused with both lists, as Keras refuses them.
    func testInOrderCountMismatchListsBothSides() throws {
        XCTAssertThrowsError(try LoadedModel(contentsOf: keras22Weights, architecture: fixture("keras/tfk_stacked_bilstm.h5"))) { error in
            let text = "\(error)"
            for fragment in ["holds weights for 3 layers (lstm_1, lstm_2, dense_1)",
                             "the architecture has 4 layers with weights (embedding, bidirectional, bidirectional_1, time_distributed)",
                             "in order"] {
                XCTAssertTrue(text.contains(fragment), "\(text) lacks '\(fragment)'")
            }
        }
    }

    /// Where weight names say what wrote them (recurrent weights), a layer of another class
    /// at the same position is refused, naming both.
    func testInOrderClassesMustAgreeWhereTheFileTells() throws {
        let folder = try temporaryFolder(self)
        let architecture: [String: Any] = [
            "class_name": "Sequential", "keras_version": "2.21.0",
            "config": ["name": "s", "layers": [
                ["class_name": "InputLayer", "config": ["name": "in", "batch_input_shape": [NSNull(), 6, 4], "dtype": "float32"]],
                ["class_name": "Dense", "config": ["name": "d", "units": 20]],
                ["class_name": "LSTM", "config": ["name": "l1", "units": 5, "return_sequences": true]],
                ["class_name": "LSTM", "config": ["name": "l2", "units": 3]],
            ]],
        ]
        let path = folder.appendingPathComponent("classes.json").path
        try JSONSerialization.data(withJSONObject: architecture).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try LoadedModel(contentsOf: keras22Weights, architecture: path)) { error in
            XCTAssertTrue("\(error)".contains("layer d (Dense), paired in order with the file's layer lstm_1: the file's layer holds recurrent weights (lstm_1/kernel:0, lstm_1/recurrent_kernel:0, lstm_1/bias:0), which a Dense layer does not take"), "\(error)")
        }
    }

    /// Name matching is Keras's for legacy weights files only: a full model, a Keras 3
    /// weights layout and a PyTorch file refuse it.
    func testByNameOnlyForLegacyWeightsFiles() throws {
        let cases: [(String, String?)] = [
            ("keras/tfk_stacked_bilstm.h5", nil),
            ("keras/k3_stacked_bilstm.weights.h5", "keras/k3_stacked_bilstm.keras"),
            ("keras/k3_stacked_bilstm.keras", nil),
            ("pytorch/gru_basic.h5", nil),
        ]
        for (model, architecture) in cases {
            XCTAssertThrowsError(try LoadedModel(contentsOf: fixture(model), architecture: architecture.map(fixture),
                                                 weightsMatching: .name), model) { error in
                XCTAssertTrue("\(error)".contains("by name applies to a legacy HDF5 weights-only file"), "\(model): \(error)")
            }
        }
        // The legacy weights file of the same model reads by name (its names are the model's).
        let named = try LoadedModel(contentsOf: fixture("keras/tfk_stacked_bilstm.legacy-weights.h5"),
                                    architecture: fixture("keras/tfk_stacked_bilstm.h5"), weightsMatching: .name)
        XCTAssertTrue(try Verification(model: named, fixture: Fixture(contentsOf: fixture("keras/tfk_stacked_bilstm.legacy-weights.fixture.h5"))).passed)
    }

    /// The layouts tf-keras's load_weights converts and rnnkit does not (Keras 1's per-gate
    /// arrays, CuDNNLSTM's split biases) are refused, saying what they are.
    func testLayoutsKerasConvertsAreRefusedByName() throws {
        let folder = try temporaryFolder(self)
        let architecture: [String: Any] = [
            "class_name": "Sequential", "keras_version": "2.21.0",
            "config": ["name": "s", "layers": [
                ["class_name": "InputLayer", "config": ["name": "in", "batch_input_shape": [NSNull(), 6, 4], "dtype": "float32"]],
                ["class_name": "LSTM", "config": ["name": "lstm", "units": 3, "recurrent_activation": "hard_sigmoid"]],
            ]],
        ]
        let architecturePath = folder.appendingPathComponent("lstm.json").path
        try JSONSerialization.data(withJSONObject: architecture).write(to: URL(fileURLWithPath: architecturePath))
        func weightsFile(_ name: String, version: String?, weights: [(String, [Int])]) throws -> String {
            let path = folder.appendingPathComponent(name).path
            let file = try HDF5File.create(path)
            try file.root.setAttribute("layer_names", .strings(["input_1", "lstm_1"]))
            if let version { try file.root.setAttribute("keras_version", .string(version)) }
            _ = try file.root.createGroup("input_1")
            let group = try file.root.createGroup("lstm_1")
            try group.setAttribute("weight_names", .strings(weights.map(\.0)))
            for (weight, shape) in weights {
                _ = try group.write(weight, floats: [Float](repeating: 0.1, count: shape.reduce(1, *)), shape: shape)
            }
            try file.flush()
            return path
        }
        let keras1 = try weightsFile("keras1.h5", version: nil, weights: ["i", "c", "f", "o"].flatMap { gate in
            [("lstm_1_W_\(gate)", [4, 3]), ("lstm_1_U_\(gate)", [3, 3]), ("lstm_1_b_\(gate)", [3])]
        })
        XCTAssertThrowsError(try LoadedModel(contentsOf: keras1, architecture: architecturePath)) { error in
            XCTAssertTrue("\(error)".contains("layer lstm (LSTM), paired in order with the file's layer lstm_1: has 12 weight tensors in the file, expected 3; 12 arrays are Keras 1's per-gate layout"), "\(error)")
        }
        let cudnn = try weightsFile("cudnn.h5", version: "2.2.4", weights: [
            ("cu_dnnlstm_1/kernel:0", [4, 12]), ("cu_dnnlstm_1/recurrent_kernel:0", [3, 12]), ("cu_dnnlstm_1/bias:0", [24]),
        ])
        XCTAssertThrowsError(try LoadedModel(contentsOf: cudnn, architecture: architecturePath)) { error in
            XCTAssertTrue("\(error)".contains("bias has shape [24], expected [12]: [8·units] is a CuDNNLSTM layer's weights"), "\(error)")
        }
    }

    /// Checks one tag against the loaded model and the files.
    private func exercised(_ tag: String, model: LoadedModel, fixture: Fixture, modelPath: String) throws -> Bool {
        let layers = model.model.layers
        let recurrent = model.recurrentLayers
        let types = Set(model.summaries.map(\.type))
        let denseActivations = layers.compactMap { layer -> Activation? in
            switch layer {
            case let .dense(dense): return dense.activation
            case let .activation(activation): return activation
            default: return nil
            }
        }
        let allActivations = denseActivations + recurrent.flatMap { [$0.activation, $0.recurrentActivation] }
        func isKeras(_ version: Int) -> Bool {
            model.kerasVersion == version && (fixture.generator?.hasPrefix(version == 2 ? "tf-keras 2" : "keras 3") ?? false)
        }
        switch tag {
        case "keras2": return isKeras(2)
        case "keras3": return isKeras(3)
        case "h5-full": return [.keras2H5, .keras3H5].contains(model.layout)
        case "h5-weights":
            let hasNames = try HDF5File.open(modelPath).root.hasAttribute("layer_names")
            return model.layout == .kerasWeights && hasNames
        case "keras-weights":
            let hasLayers = try HDF5File.open(modelPath).root.kind(of: "layers") == .group
            return model.layout == .kerasWeights && hasLayers
        case "keras-archive": return model.layout == .kerasArchive
        case "keras22-weights":
            // Written by a Keras whose LSTM default recurrent_activation was hard_sigmoid.
            guard model.layout == .kerasWeights,
                  let text = try HDF5File.open(modelPath).root.attribute("keras_version")?.stringValue,
                  let release = KerasVersionResolver.release(text) else { return false }
            return release.lexicographicallyPrecedes([2, 3, 0])
        case "weights-in-order":
            // Paired in order with file layers of other names (inspect shows whose weights).
            return fixture.weightsMatching != .name && model.summaries.contains { $0.details.contains { $0.0 == "weights_from" } }
        case "weights-by-name": return fixture.weightsMatching == .name && model.layout == .kerasWeights
        case "version-from-serialization":
            // Neither file records keras_version; the version comes from what only it writes.
            guard let path = fixture.architecturePath, path.hasSuffix(".json"), model.kerasVersion != nil else { return false }
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
            let weightsSay = try HDF5File.open(modelPath).root.hasAttribute("keras_version")
            return json?["keras_version"] == nil && !weightsSay
        case "model-config": return model.layout != .kerasWeights
        case "to-json-architecture":
            // The architecture is model.to_json(), whose own keras_version is all that says Keras 2.
            guard let path = fixture.architecturePath, path.hasSuffix(".json") else { return false }
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
            return json?["keras_version"] is String && model.layout == .kerasWeights
        case "sequential": return model.modelClass == "Sequential"
        case "functional": return model.modelClass == "Functional"
        case "tokens": return model.model.takesTokenIDs && !model.takesTexts
        case "texts", "text-vectorization", "vocabulary-assets", "vocabulary-config", "oov", "empty-text",
             "output-sequence-length", "pad-to-longest":
            return try textExercised(tag, model: model, fixture: fixture, modelPath: modelPath)
        case let name where name.hasPrefix("standardize-") || name.hasPrefix("split-"):
            guard let vectorizer = model.model.textVectorizer else { return false }
            let flags = [vectorizer.lowercase ? "lower" : nil, vectorizer.stripPunctuation ? "strip-punctuation" : nil].compactMap { $0 }
            return name == "standardize-" + (flags.isEmpty ? "none" : flags.joined(separator: "-and-"))
                || name == "split-" + vectorizer.split.rawValue
        case "embedding": return layers.contains { if case .embedding = $0 { return true } else { return false } }
        case "mask-zero": return layers.contains { if case let .embedding(e) = $0 { return e.maskZero } else { return false } }
        case "masking": return layers.contains { if case .masking = $0 { return true } else { return false } }
        case "mask-value": return layers.contains { if case let .masking(v) = $0 { return v != 0 } else { return false } }
        case "mask-middle": return fixture.lengths == nil && maskHasGaps(model: model, fixture: fixture)
        case "masked-features":
            // A non-zero mask value whose masked rows reach a per-step layer (as zeros).
            guard let index = layers.firstIndex(where: { if case let .masking(v) = $0 { return v != 0 } else { return false } }),
                  index + 1 < layers.count, case .dense = layers[index + 1] else { return false }
            return true
        case "lengths": return fixture.lengths.map { lengths in lengths.contains { $0 < timeSteps(fixture) } } ?? false
        case "rnn": return recurrent.contains { $0.kind == .rnn }
        case "lstm": return recurrent.contains { $0.kind == .lstm }
        case "gru": return recurrent.contains { $0.kind == .gru }
        case "rnn-relu": return recurrent.contains { $0.kind == .rnn && $0.activation == .relu }
        case "bidirectional": return recurrent.contains(where: \.isBidirectional)
        case "multilayer": return recurrent.count > 1
        case "no-bias": return recurrent.contains { $0.directions.allSatisfy { $0.inputBias == nil } }
        case "return-sequences": return zip(layers, layers.dropFirst()).contains {
            if case let .recurrent(r) = $0.0 { return r.returnSequences } else { return false }
        }
        case "go-backwards": return recurrent.contains(where: \.goBackwards)
        case "reset-before": return recurrent.contains { $0.kind == .gru && $0.gruResetRule == .beforeMatmul }
        case "reset-after": return recurrent.contains { $0.kind == .gru && $0.gruResetRule == .afterMatmul }
        case "hard-sigmoid":
            return allActivations.contains(model.kerasVersion == 2 ? .hardSigmoidKeras2 : .hardSigmoid)
        case let merge where merge.hasPrefix("merge-"):
            return recurrent.contains { $0.isBidirectional && $0.merge.rawValue == merge.dropFirst(6) }
        case "dense": return layers.contains { if case .dense = $0 { return true } else { return false } }
        case "dense-3d": return denseOnSequences(layers)
        case "time-distributed": return types.contains("TimeDistributed")
        case "activation-layer": return types.contains("Activation")
        case let name where name.hasPrefix("activation-"):
            let wanted: [String: Activation] = [
                "linear": .linear, "relu": .relu, "tanh": .tanh, "sigmoid": .sigmoid, "softmax": .softmax,
                "hard-sigmoid": model.kerasVersion == 2 ? .hardSigmoidKeras2 : .hardSigmoid, "elu": .elu, "selu": .selu,
                "softplus": .softplus, "softsign": .softsign, "swish": .swish, "gelu": .gelu,
            ]
            guard let activation = wanted[String(name.dropFirst("activation-".count))] else { return false }
            return denseActivations.contains(activation)
        case "dropout": return !types.isDisjoint(with: ["Dropout", "SpatialDropout1D", "GaussianNoise"])
        case "global-avg-pool": return layers.contains(.readout(.meanOverValidSteps))
        case "global-max-pool": return layers.contains(.readout(.maxOverAllSteps))
        case "flatten": return layers.contains(.flatten)
        case "return-state":
            return model.modelClass == "Functional"
                && model.summaries.contains { $0.details.contains { $0.0 == "return_state" && $0.1 == .flag(true) } }
        case "stateful", "unroll":
            return model.summaries.contains { $0.details.contains { $0.0 == tag && $0.1 == .flag(true) } }
        default:
            XCTFail("unknown tag \(tag)")
            return false
        }
    }

    private func timeSteps(_ fixture: Fixture) -> Int {
        switch fixture.input {
        case let .features(x): return x.shape[1]
        case let .tokens(_, _, time): return time
        case .texts: return 0
        }
    }

    /// Checks a text model's tag against its vectorizer, its file and the fixture's texts.
    private func textExercised(_ tag: String, model: LoadedModel, fixture: Fixture, modelPath: String) throws -> Bool {
        guard case let .texts(texts) = fixture.input, let vectorizer = model.model.textVectorizer else { return false }
        let rows = texts.map(vectorizer.ids(of:))
        let source = model.summaries.first { $0.type == "TextVectorization" }?.details.first { $0.0 == "vocabulary" }?.1.description
        switch tag {
        case "texts":
            // What the rules turn on is really in the texts: ASCII punctuation and capitals,
            // capitals with accents, digits, emoji, tabs, newlines and runs of spaces,
            // non-ASCII spaces.
            let scalars = Set(texts.flatMap(\.unicodeScalars))
            return scalars.contains("!") && scalars.contains("G") && scalars.contains("É") && scalars.contains("3")
                && scalars.contains("😀") && scalars.contains("\t") && scalars.contains("\n") && scalars.contains("\u{00A0}")
                && texts.contains { $0.contains("   ") }
        case "text-vectorization": return model.takesTexts && model.summaries.contains { $0.type == "TextVectorization" }
        case "vocabulary-assets":
            guard let source, source.hasPrefix("assets/"), model.layout == .kerasArchive else { return false }
            return try ZipArchive(path: modelPath).names.contains(source)
        case "vocabulary-config": return source == "config"
        case "oov": return rows.contains { $0.contains(TextVectorizer.oovIndex) }
        case "empty-text": return texts.contains("")
        case "output-sequence-length":
            // Some text is cut, another padded.
            guard let length = vectorizer.outputSequenceLength else { return false }
            return rows.contains { $0.count > length } && rows.contains { $0.count < length }
        case "pad-to-longest":
            return vectorizer.outputSequenceLength == nil && Set(rows.map(\.count)).count > 1
        default: return false
        }
    }

    /// True when some sequence has a masked step before an unmasked one.
    private func maskHasGaps(model: LoadedModel, fixture: Fixture) -> Bool {
        guard case let .features(x) = fixture.input,
              case let .masking(value)? = model.model.layers.first(where: { if case .masking = $0 { return true } else { return false } })
        else { return false }
        let (batch, time, features) = (x.shape[0], x.shape[1], x.shape[2])
        for b in 0..<batch {
            let valid = (0..<time).map { t in (0..<features).contains { x.values[(b * time + t) * features + $0] != value } }
            if let firstMasked = valid.firstIndex(of: false), valid[firstMasked...].contains(true) { return true }
        }
        return false
    }

    /// True when a dense layer applies per step (to `[batch, time, features]` data).
    private func denseOnSequences(_ layers: [Layer]) -> Bool {
        var sequence = true
        for layer in layers {
            switch layer {
            case .dense: if sequence { return true }
            case let .recurrent(r): sequence = r.returnSequences
            case .readout, .flatten: sequence = false
            default: break
            }
        }
        return false
    }
}

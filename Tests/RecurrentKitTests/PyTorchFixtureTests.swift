import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit

/// Every committed PyTorch fixture verifies at the default tolerance, and really exercises
/// what it claims to.
final class PyTorchFixtureTests: XCTestCase {
    /// The cases the generator makes, with the tags each must carry. A fixture that goes
    /// missing, or loses a tag, fails here.
    static let expectedCases: [String: Set<String>] = [
        "rnn_tanh": ["rnn"],
        "rnn_relu": ["rnn", "rnn-relu", "model-config"],
        "rnn_bidir_2layer_lengths": ["rnn", "bidirectional", "multilayer", "lengths"],
        "rnn_deep_prefix": ["rnn", "prefix"],
        "lstm_basic": ["lstm"],
        "lstm_no_bias": ["lstm", "no-bias"],
        "lstm_proj": ["lstm", "proj"],
        "lstm_bidir_2layer_lengths": ["lstm", "bidirectional", "multilayer", "lengths"],
        "lstm_bidir_proj_lengths": ["lstm", "bidirectional", "multilayer", "proj", "lengths"],
        "lstm_initial_state_lengths": ["lstm", "bidirectional", "lengths", "initial-state"],
        "lstm_float16": ["lstm", "float16"],
        "lstm_big_endian": ["lstm", "big-endian"],
        "lstm_nested_keys": ["lstm", "nested-keys"],
        "lstm_mixed_keys": ["lstm", "nested-keys", "prefix"],
        "gru_basic": ["gru"],
        "gru_no_bias": ["gru", "no-bias"],
        "gru_bidir_2layer_lengths": ["gru", "bidirectional", "multilayer", "lengths"],
        "gru_initial_state": ["gru", "multilayer", "initial-state"],
        "gru_float64": ["gru", "float64"],
        "gru_gzip": ["gru", "gzip"],
        "gru_no_prefix": ["gru"],
        "clf_embed_lstm_last_hidden": ["lstm", "lengths", "padding-idx", "tokens", "model-config"],
        "clf_embed_rnn_mean": ["rnn", "lengths", "padding-idx", "tokens", "model-config"],
        "clf_embed_bigru_softmax": ["gru", "bidirectional", "lengths", "padding-idx", "tokens", "model-config", "prefix"],
        "clf_lstm2_last_step_mlp": ["lstm", "multilayer", "lengths", "model-config"],
        "clf_bilstm_max_sigmoid": ["lstm", "bidirectional", "lengths", "model-config"],
        "char_lstm": ["lstm", "tokens", "model-config"],
        "lesson_rnn": ["rnn", "unpacked", "tokens", "model-config"],
        "lesson_lstm": ["lstm", "unpacked", "padding-idx", "tokens", "model-config"],
        "lesson_lstm_pack": ["lstm", "lengths", "tokens", "model-config"],
        "lesson_lstm_pack_padding_idx": ["lstm", "lengths", "padding-idx", "tokens", "model-config"],
        "lesson_bilstm2_pack": ["lstm", "bidirectional", "multilayer", "lengths", "tokens", "model-config"],
        "lesson_bilstm2_pack_padding_idx": ["lstm", "bidirectional", "multilayer", "lengths", "padding-idx", "tokens", "model-config"],
        "lesson_lstm_pack_pad3": ["lstm", "lengths", "padding-idx", "tokens", "model-config"],
    ]

    func testEveryFixtureVerifiesAndExercisesItsTags() throws {
        let folder = fixturesFolder.appendingPathComponent("pytorch")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            .filter { $0.hasSuffix(".fixture.h5") }.map { String($0.dropLast(".fixture.h5".count)) }
        XCTAssertEqual(Set(names), Set(Self.expectedCases.keys), "fixture set changed")
        for name in names.sorted() {
            let fixture = try Fixture(contentsOf: folder.appendingPathComponent("\(name).fixture.h5").path)
            let modelFile = try XCTUnwrap(fixture.model, "\(name): fixture names no model")
            let model = try LoadedModel(contentsOf: folder.appendingPathComponent(modelFile).path)
            XCTAssertTrue(fixture.generator?.hasPrefix("torch ") ?? false, "\(name): generator \(fixture.generator ?? "nil")")
            XCTAssertTrue(Set(fixture.exercises).isSuperset(of: Self.expectedCases[name] ?? []), "\(name): tags \(fixture.exercises)")
            let verification = try Verification(model: model, fixture: fixture)
            XCTAssertEqual(verification.atol, 1e-5, name)
            XCTAssertEqual(verification.rtol, 1e-4, name)
            for comparison in verification.comparisons {
                XCTAssertTrue(comparison.passed,
                              "\(name) \(comparison.name): max abs \(comparison.maxAbsoluteError), first mismatch \(comparison.firstMismatch ?? [])")
            }
            XCTAssertTrue(verification.comparisons.contains { $0.name == "output" })
            if model.isBareRecurrentModule {
                XCTAssertTrue(verification.comparisons.contains { $0.name == "h_n" }, "\(name): bare modules check h_n")
            }
            try assertExercises(name, tags: fixture.exercises, model: model, fixture: fixture,
                                modelPath: folder.appendingPathComponent(modelFile).path)
            try assertThreadCountsAgree(name, model: model, fixture: fixture)
        }
    }

    /// Checks each tag against the files themselves.
    private func assertExercises(_ name: String, tags: [String], model: LoadedModel, fixture: Fixture, modelPath: String) throws {
        let recurrent = model.recurrentLayers
        let keys = try HDF5File.open(modelPath).root.datasetPaths()
        let time: Int
        switch fixture.input {
        case let .features(tensor): time = tensor.shape[1]
        case let .tokens(_, _, t): time = t
        case .texts: time = 0
        }
        for tag in tags {
            let present: Bool
            switch tag {
            case "rnn": present = recurrent.contains { $0.kind == .rnn }
            case "lstm": present = recurrent.contains { $0.kind == .lstm }
            case "gru": present = recurrent.contains { $0.kind == .gru }
            case "rnn-relu": present = recurrent.contains { $0.kind == .rnn && $0.activation == .relu }
            case "bidirectional": present = recurrent.contains { $0.directions.count == 2 }
            case "multilayer": present = recurrent.count > 1
            case "no-bias": present = recurrent.contains { $0.directions.contains { $0.inputBias == nil && $0.recurrentBias == nil } }
            case "proj": present = recurrent.contains { $0.projectionSize != nil }
            case "lengths": present = fixture.lengths.map { $0.contains { $0 < time } } ?? false
            case "unpacked":
                // Right-padded token ids (a row ending in the padding id) and no /lengths.
                if case let .tokens(ids, _, t) = fixture.input, fixture.lengths == nil {
                    present = stride(from: t - 1, to: ids.count, by: t).contains { ids[$0] == 0 }
                } else {
                    present = false
                }
            case "padding-idx":
                if case let .embedding(embedding)? = model.model.layers.first { present = embedding.paddingIndex != nil } else { present = false }
            case "initial-state": present = fixture.h0 != nil
            case "tokens": if case .tokens = fixture.input { present = true } else { present = false }
            case "model-config": present = !model.isBareRecurrentModule
            case "float16": present = model.storedTypes.contains("float16")
            case "float64": present = model.storedTypes.contains("float64")
            case "big-endian": present = model.storedTypes.contains { $0.contains("big-endian") }
            case "nested-keys": present = keys.contains { $0.contains("/") }
            case "prefix": present = keys.allSatisfy { $0.split(whereSeparator: { $0 == "." || $0 == "/" }).count >= 3 }
            case "gzip": present = model.compressed
            default: XCTFail("\(name): unknown tag \(tag)"); continue
            }
            XCTAssertTrue(present, "\(name) claims '\(tag)' but the files do not show it")
        }
    }

    /// Ignoring lengths must give a visibly wrong answer, or the lengths prove nothing.
    func testLengthsMatter() throws {
        let folder = fixturesFolder.appendingPathComponent("pytorch")
        for name in ["lstm_bidir_2layer_lengths", "gru_bidir_2layer_lengths", "clf_embed_rnn_mean"] {
            var fixture = try Fixture(contentsOf: folder.appendingPathComponent("\(name).fixture.h5").path)
            let model = try LoadedModel(contentsOf: folder.appendingPathComponent("\(name).h5").path)
            XCTAssertTrue(try Verification(model: model, fixture: fixture).passed)
            fixture.lengths = nil
            XCTAssertFalse(try Verification(model: model, fixture: fixture).passed, "\(name) passes without its lengths")
        }
    }
}

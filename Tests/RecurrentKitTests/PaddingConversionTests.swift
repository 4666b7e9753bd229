import Foundation
import XCTest
import TestSupport
@testable import RecurrentKit

/// PyTorch classifiers on right-padded token ids, converted to Keras (spec/conversion.md,
/// "Padding"): exact on padded batches through the Embedding's own mask, or refused naming
/// `--padding-id`; notes only where they apply.
final class PaddingConversionTests: XCTestCase {
    struct Case {
        var name: String
        var paddingID: PaddingID?
        /// Whether the converted Keras Embedding masks id 0.
        var masks: Bool
        /// A fragment of the one note the conversion gives, or nil for none.
        var note: String?
    }

    /// The lesson's classifiers (fixtures/pytorch/generate.py: over the padding, packed, with
    /// and without padding_idx, every length 1…T) and the earlier token classifiers.
    static let cases: [Case] = [
        Case(name: "lesson_rnn", paddingID: PaddingID.none, masks: false, note: nil),
        Case(name: "lesson_lstm", paddingID: PaddingID.none, masks: false, note: nil),
        Case(name: "lesson_lstm_pack", paddingID: .id(0), masks: true, note: "embed: mask_zero=True (paddingID: .id(0))"),
        Case(name: "lesson_lstm_pack_padding_idx", paddingID: nil, masks: true, note: "embed: mask_zero=True (padding_idx 0)"),
        Case(name: "lesson_lstm_pack_padding_idx", paddingID: .id(0), masks: true, note: "embed: mask_zero=True (paddingID: .id(0))"),
        Case(name: "lesson_bilstm2_pack", paddingID: .id(0), masks: true, note: "embed: mask_zero=True (paddingID: .id(0))"),
        Case(name: "lesson_bilstm2_pack_padding_idx", paddingID: nil, masks: true, note: "embed: mask_zero=True (padding_idx 0)"),
        Case(name: "lesson_lstm_pack_pad3", paddingID: .id(3), masks: true, note: "embed: ids 0 and 3 exchanged in the table"),
        Case(name: "clf_embed_lstm_last_hidden", paddingID: nil, masks: true, note: "embed: mask_zero=True (padding_idx 0)"),
        Case(name: "clf_embed_rnn_mean", paddingID: nil, masks: true, note: "embed: mask_zero=True (padding_idx 0)"),
        Case(name: "clf_embed_bigru_softmax", paddingID: nil, masks: true, note: "embed: mask_zero=True (padding_idx 0)"),
    ]

    private func source(_ name: String) -> String { fixture("pytorch/\(name).h5") }

    private func loadFixture(_ name: String) throws -> Fixture {
        try Fixture(contentsOf: fixture("pytorch/\(name).fixture.h5"))
    }

    private func path(_ folder: URL, _ name: String, _ target: ConversionTarget) -> String {
        folder.appendingPathComponent("\(name).\(target.rawValue)" + (target == .keras3 ? ".keras" : ".h5")).path
    }

    /// The converted model, read back by rnnkit and run on the padded ids with no lengths (the
    /// only mask is the one Keras computes from id 0), computes torch's outputs.
    func testConvertedKerasModelsMatchPyTorchOnPaddedBatches() throws {
        let folder = try temporaryFolder(self)
        var checked = 0
        for item in Self.cases {
            let fixture = try loadFixture(item.name)
            let expected = try XCTUnwrap(fixture.expected.first { $0.name == "output" }?.tensor)
            var input = fixture.input
            if case let .id(pad)? = item.paddingID, pad != 0 { input = exchanging(input, 0, pad) }
            if item.name.hasPrefix("lesson_") {
                // Padded batches: every length 1…T, so a length-1 and a full-length row.
                guard case let .tokens(ids, batch, time) = fixture.input else { return XCTFail("\(item.name): not token ids") }
                let pad = item.paddingID.flatMap { if case let .id(id) = $0 { return id } else { return nil } } ?? 0
                let lengths = (0..<batch).map { row in (0..<time).last { ids[row * time + $0] != pad }.map { $0 + 1 } ?? 0 }
                XCTAssertEqual(Set(lengths), Set(1...time), "\(item.name): lengths \(lengths)")
                if let stored = fixture.lengths { XCTAssertEqual(stored, lengths, item.name) }
            }
            for target in [ConversionTarget.keras, .keras3] {
                let label = "\(item.name) --padding-id \(item.paddingID.map(KerasPadding.argument) ?? "(none given)") → \(target.rawValue)"
                let output = path(folder, "\(item.name)-\(item.paddingID.map(KerasPadding.argument) ?? "default")", target)
                let report = try Converter.convert(source(item.name), to: target, output: output, paddingID: item.paddingID)
                if let note = item.note {
                    XCTAssertEqual(report.notes.count, 1, "\(label): \(report.notes)")
                    XCTAssertTrue(report.notes.first?.hasPrefix(note) ?? false, "\(label): \(report.notes)")
                    XCTAssertTrue(report.notes.first?.contains("right-padded with 0") ?? false, "\(label): \(report.notes)")
                } else {
                    XCTAssertEqual(report.notes, [], label)
                }
                let converted = try LoadedModel(contentsOf: output)
                guard case let .embedding(embedding)? = converted.model.layers.first else { return XCTFail("\(label): no Embedding") }
                XCTAssertEqual(embedding.maskZero, item.masks, "\(label): mask_zero")
                let actual = try converted.run(input, lengths: nil).output
                let comparison = Comparison(name: label, actual: actual, expected: expected, atol: 1e-5, rtol: 1e-4)
                XCTAssertTrue(comparison.passed, "\(label): max abs error \(comparison.maxAbsoluteError)")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 2 * Self.cases.count)
    }

    /// Each mask decision is the only exact one: a packed model unmasked, an unpacked one
    /// masked, or ids not exchanged, give visibly different outputs.
    func testTheMaskMatters() throws {
        let folder = try temporaryFolder(self)
        let wrong: [(String, PaddingID?)] = [
            ("lesson_lstm_pack", PaddingID.none),               // packed, run over the padding
            ("lesson_bilstm2_pack_padding_idx", PaddingID.none),
            ("lesson_lstm", nil),                               // over the padding, masked by padding_idx 0
            ("lesson_rnn", .id(0)),
            ("lesson_lstm_pack_pad3", .id(3)),                  // fed the ids not exchanged
        ]
        for (name, paddingID) in wrong {
            let fixture = try loadFixture(name)
            let expected = try XCTUnwrap(fixture.expected.first { $0.name == "output" }?.tensor)
            let output = path(folder, name, .keras3)
            _ = try Converter.convert(source(name), to: .keras3, output: output, paddingID: paddingID)
            let actual = try LoadedModel(contentsOf: output).run(fixture.input, lengths: nil).output
            let comparison = Comparison(name: name, actual: actual, expected: expected, atol: 1e-5, rtol: 1e-4)
            XCTAssertFalse(comparison.passed, "\(name) with \(paddingID.map(KerasPadding.argument) ?? "no option") matches torch; the case proves nothing")
            XCTAssertGreaterThan(comparison.maxAbsoluteError, 1e-3, name)
        }
    }

    /// The rule follows how a source takes lengths, not its framework: a model run on them as
    /// packed sequences without a PyTorch structure (an ONNX graph with `sequence_lens`) is
    /// refused without a padding id as a PyTorch one is; one that takes no lengths (an ONNX
    /// graph without `sequence_lens`) is written as it is, and a padding id is refused for it.
    func testThePaddingRuleFollowsHowTheSourceTakesLengths() throws {
        let model = try LoadedModel(contentsOf: source("lesson_lstm_pack")).model
        XCTAssertEqual(model.lengthsRule, .packed)
        XCTAssertThrowsError(try KerasPadding.apply(to: model, pytorch: nil, paddingID: nil, file: "m.onnx", version: .keras3)) { error in
            XCTAssertEqual((error as? ModelError)?.options, [.paddingID], "\(error)")
        }
        let padded = try KerasPadding.apply(to: model, pytorch: nil, paddingID: .id(0), file: "m.onnx", version: .keras3)
        guard case let .embedding(embedding)? = padded.model.layers.first else { return XCTFail("no embedding first") }
        XCTAssertTrue(embedding.maskZero)
        let why = "the ONNX graph has no sequence_lens input (ONNX Runtime runs it over every step)"
        let unchanged = try KerasPadding.apply(to: model, pytorch: nil, lengthsRefusal: why, paddingID: nil, file: "m.onnx", version: .keras3)
        XCTAssertEqual(unchanged.model, model)
        XCTAssertTrue(unchanged.notes.isEmpty)
        XCTAssertThrowsError(try KerasPadding.apply(to: model, pytorch: nil, lengthsRefusal: why, paddingID: .id(0), file: "m.onnx",
                                                    version: .keras3)) { error in
            XCTAssertEqual("\(error)", "m.onnx: a padding id (0) applies to a model run on lengths; this one takes none (\(why)), so the Keras model runs over every step as it does")
        }
    }

    /// A PyTorch classifier whose padding Keras cannot see is refused, naming the option and
    /// the layer, and writes nothing; options that cannot apply are refused too.
    func testRefusedWithoutAPaddingIDNamingTheOption() throws {
        let folder = try temporaryFolder(self)
        for name in ["lesson_rnn", "lesson_lstm_pack", "lesson_bilstm2_pack", "lesson_lstm_pack_pad3"] {
            for target in [ConversionTarget.keras, .keras3] {
                let output = path(folder, name, target)
                XCTAssertThrowsError(try Converter.convert(source(name), to: target, output: output)) { error in
                    let text = "\(error)"
                    XCTAssertTrue(text.hasPrefix(self.source(name)), "\(name): names the input: \(text)")
                    XCTAssertTrue(text.contains("embed"), "\(name): names the layer: \(text)")
                    // The library's words for the option; its typed cause for a tool's own.
                    XCTAssertTrue(text.contains(name == "lesson_lstm_pack_pad3" ? "paddingID: .id(3)" : "paddingID: .id(ID)"), "\(name): \(text)")
                    XCTAssertTrue(text.contains("paddingID: .none"), "\(name): \(text)")
                    XCTAssertEqual((error as? ModelError)?.options, [.paddingID], text)
                    XCTAssertEqual((error as? ModelError)?.kind, .unsupported, text)
                }
                XCTAssertFalse(FileManager.default.fileExists(atPath: output), "\(name): a refusal writes nothing")
            }
        }
        let refused: [(String, ConversionTarget, PaddingID, String)] = [
            (source("lesson_lstm_pack"), .keras3, .id(20), "paddingID: .id(20) is outside the vocabulary 0..<20"),
            (source("lesson_lstm_pack_pad3"), .keras3, .id(0), "padding_idx 3 says sequences are padded with 3; paddingID: .id(0) disagrees"),
            (source("lesson_lstm_pack_padding_idx"), .keras, .id(2), "padding_idx 0 says sequences are padded with 0; paddingID: .id(2) disagrees"),
            (source("clf_lstm2_last_step_mlp"), .keras3, .id(0), "paddingID: .id(0) is for a model that takes token ids"),
            (fixture("keras/tfk_text_bilstm.h5"), .keras3, .id(0), "paddingID: .id(0) applies to a PyTorch model converted to Keras"),
            (source("lesson_lstm_pack"), .pytorch, .id(0), "paddingID goes with target: .keras or target: .keras3"),
        ]
        for (input, target, paddingID, reason) in refused {
            let output = folder.appendingPathComponent("refused" + (target == .keras3 ? ".keras" : ".h5")).path
            XCTAssertThrowsError(try Converter.convert(input, to: target, output: output, paddingID: paddingID)) { error in
                XCTAssertTrue("\(error)".contains(reason), "\(error)")
                XCTAssertTrue("\(error)".hasPrefix(input), "\(error)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: output), reason)
        }
    }

    /// Notes appear only where they say something the user must do: not for a model run
    /// over the padding, not from or to PyTorch's own layout, not for Keras → Keras; float
    /// features get the caller's mask=.
    func testNotesOnlyWhereTheyApply() throws {
        let folder = try temporaryFolder(self)
        // Keras → Keras: every Keras fixture, an Embedding without mask_zero included.
        var kerasChecked = 0
        for file in try FileManager.default.contentsOfDirectory(atPath: fixturesFolder.appendingPathComponent("keras").path).sorted()
        where file.hasSuffix(".fixture.h5") {
            let fixture = try Fixture(contentsOf: fixturesFolder.appendingPathComponent("keras/\(file)").path)
            let model = try XCTUnwrap(fixture.modelPath)
            for target in [ConversionTarget.keras, .keras3] {
                let output = path(folder, "k-\(file)", target)
                guard let report = try? Converter.convert(model, to: target, output: output, architecture: fixture.architecturePath) else { continue }
                XCTAssertEqual(report.notes, [], "\(file) → \(target.rawValue)")
                kerasChecked += 1
            }
        }
        XCTAssertGreaterThan(kerasChecked, 20)
        XCTAssertTrue(try Converter.convert(fixture("keras/tfk_text_rnn.h5"), to: .keras3, output: path(folder, "text_rnn", .keras3)).notes.isEmpty,
                      "an Embedding without mask_zero, Keras → Keras")
        // PyTorch → PyTorch, and PyTorch → Keras → PyTorch: the masks are the source's own.
        let pytorch = folder.appendingPathComponent("pack.pt").path
        XCTAssertEqual(try Converter.convert(source("lesson_lstm_pack"), to: .pytorch, output: pytorch).notes, [])
        let keras = path(folder, "pack", .keras3)
        XCTAssertEqual(try Converter.convert(source("lesson_lstm_pack"), to: .keras3, output: keras, paddingID: .id(0)).notes.count, 1)
        XCTAssertEqual(try Converter.convert(keras, to: .pytorch, output: folder.appendingPathComponent("back.pt").path).notes, [])
        XCTAssertEqual(try Converter.convert(keras, to: .keras, output: path(folder, "again", .keras)).notes, [], "Keras → Keras")
        // Keras → PyTorch → Keras: the version-2 model_config says the model takes lengths as
        // Keras does ("lengths": "keras_mask": here its Embedding drops them), so it is written
        // back as it is, without a note, and --padding-id is refused for it.
        let v2 = folder.appendingPathComponent("text_rnn.pt").path
        XCTAssertEqual(try Converter.convert(fixture("keras/tfk_text_rnn.h5"), to: .pytorch, output: v2).notes, [])
        XCTAssertEqual(try LoadedModel(contentsOf: v2).model.lengthsRule, .kerasCallMask)
        XCTAssertEqual(try Converter.convert(v2, to: .keras3, output: path(folder, "text_rnn_back", .keras3)).notes, [])
        XCTAssertThrowsError(try Converter.convert(v2, to: .keras, output: path(folder, "text_rnn_back", .keras), paddingID: .id(0))) {
            XCTAssertTrue("\($0)".contains("takes them as Keras does"), "\($0)")
        }
        // Float features with lengths: the caller's mask=, for bare modules and whole models.
        for name in ["clf_lstm2_last_step_mlp", "lstm_bidir_2layer_lengths", "gru_basic"] {
            let notes = try Converter.convert(source(name), to: .keras, output: path(folder, name, .keras)).notes
            XCTAssertEqual(notes.count, 1, "\(name): \(notes)")
            XCTAssertTrue(notes.first?.contains("model(x, mask=mask) with mask[b, t] = t < lengths[b]") ?? false, "\(name): \(notes)")
        }
    }

    /// The command: refused in one line naming the option, converted with it and one note.
    func testConvertCommandTakesPaddingID() throws {
        let folder = try temporaryFolder(self)
        let out = folder.appendingPathComponent("pack.keras").path
        let refused = try rnnkit("convert", source("lesson_lstm_pack"), out, "--to", "keras3")
        XCTAssertEqual(refused.status, 2)
        XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        XCTAssertTrue(refused.stderr.contains("layer embed") && refused.stderr.contains("--padding-id"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        let converted = try rnnkit("convert", source("lesson_lstm_pack"), out, "--to", "keras3", "--padding-id", "0")
        XCTAssertEqual(converted.status, 0, converted.stderr)
        XCTAssertEqual(converted.stdout.split(separator: "\n").filter { $0.hasPrefix("note: ") }.count, 1, converted.stdout)
        let verify = try rnnkit("verify", out, fixture("pytorch/lesson_lstm_pack.fixture.h5"))
        XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
        let unpacked = try rnnkit("convert", source("lesson_rnn"), folder.appendingPathComponent("rnn.h5").path, "--to", "keras",
                                  "--padding-id", "none")
        XCTAssertEqual(unpacked.status, 0, unpacked.stderr)
        XCTAssertFalse(unpacked.stdout.contains("note:"), unpacked.stdout)
        for (value, target, output) in [("-1", "keras3", "bad.keras"), ("zero", "keras3", "bad.keras"), ("0", "pytorch", "bad.pt")] {
            let result = try rnnkit("convert", source("lesson_lstm_pack"), folder.appendingPathComponent(output).path,
                                    "--to", target, "--padding-id", value)
            XCTAssertEqual(result.status, 2, "--padding-id \(value) --to \(target): \(result.stderr)")
            XCTAssertTrue(result.stderr.contains("padding-id"), result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent(output).path))
        }
    }
}

/// Token ids with `a` and `b` exchanged (the ids a Keras model converted with
/// `--padding-id b` takes).
func exchanging(_ input: ModelInput, _ a: Int, _ b: Int) -> ModelInput {
    guard case let .tokens(ids, batch, time) = input else { return input }
    return .tokens(ids: ids.map { $0 == a ? b : $0 == b ? a : $0 }, batch: batch, time: time)
}

import Foundation
import XCTest
import TestSupport
@testable import RecurrentKit
@testable import RecurrentEngine

/// What `/lengths` means for each framework (spec/fixture-format.md, "What /lengths means"),
/// and the conversions that depend on it, on files and outputs the real frameworks wrote
/// (fixtures/seams/generate.py): a run computes what the model's own framework computes for
/// the same call, so `verify` never says ok where that framework disagrees.
final class LengthsSemanticsTests: XCTestCase {
    private func seams(_ name: String) -> String { fixture("seams/\(name)") }

    /// Keras models given lengths: Keras's `model(x, mask=mask)`, whose mask an Embedding
    /// drops (no mask_zero) and a Masking layer replaces. The expected outputs are Keras's own
    /// for that call, which differ from the lengths applied as given (the old rule).
    func testKerasModelsTakeLengthsAsKerasTakesAMask() throws {
        for name in ["tfk_embed_nomask.h5", "k3_embed_nomask.keras", "tfk_masking_replaces.h5", "k3_masking_replaces.keras"] {
            let loaded = try LoadedModel(contentsOf: seams(name))
            let fixturePath = seams(name.split(separator: ".")[0] + ".fixture.h5")
            let fixture = try Fixture(contentsOf: fixturePath)
            let lengths = try XCTUnwrap(fixture.lengths, "\(name): the fixture must hold /lengths")
            XCTAssertTrue(lengths.contains { $0 < (fixture.input.time ?? 0) }, "\(name): lengths \(lengths) mask nothing")
            let verification = try Verification(model: loaded, fixture: fixture)
            XCTAssertTrue(verification.passed, "\(name): \(verification.comparisons.map { "\($0.name) \($0.maxAbsoluteError)" })")
            XCTAssertEqual(verification.notes.count, 1, "\(name): \(verification.notes)")
            XCTAssertTrue(verification.notes.first?.contains("as in Keras: they are not applied") ?? false, "\(verification.notes)")
            // The lengths applied as PyTorch applies them give other numbers: the fixture tells.
            var packed = loaded.model
            packed.lengthsRule = .packed
            let engine = try Engine(model: packed)
            let asPacked = try engine.run(fixture.input, lengths: lengths)
            let expected = try XCTUnwrap(fixture.expected.first { $0.name == "output" }?.tensor)
            let comparison = Comparison(name: "output", actual: asPacked.output, expected: expected, atol: 1e-5, rtol: 1e-4)
            XCTAssertFalse(comparison.passed, "\(name): the fixture cannot tell the two rules apart")
        }
    }

    /// A Keras model whose own mask says what the lengths say gets no note.
    func testNoNoteWhereTheModelsOwnMaskAgrees() throws {
        for name in ["k3_text_bilstm", "tfk_functional_masking", "tfk_masking_dense"] {
            let folder = fixture("keras")
            let model = ["\(folder)/\(name).keras", "\(folder)/\(name).h5"].first { FileManager.default.fileExists(atPath: $0) }!
            let fixture = try Fixture(contentsOf: "\(folder)/\(name).fixture.h5")
            let verification = try Verification(model: try LoadedModel(contentsOf: model), fixture: fixture)
            XCTAssertTrue(verification.passed, name)
            XCTAssertEqual(verification.notes, [], name)
        }
    }

    /// The lesson's packed classifier (no padding_idx) described by version 1 and version 2
    /// model_configs: converted to Keras, refused naming the padding option either way — a
    /// version-2 document does not make the lengths unnecessary; with padding_idx 0 or an
    /// explicit padding id, the Keras model masks id 0 and verifies against torch's outputs.
    func testPackedClassifierConvertsTheSameWhateverTheConfigVersion() throws {
        let folder = try temporaryFolder(self)
        for version in ["v1", "v2"] {
            for (target, ext) in [("keras", "h5"), ("keras3", "keras")] {
                let out = folder.appendingPathComponent("\(version).\(ext)").path
                let refused = try rnnkit("convert", seams("clf_packed.pt"), out, "--to", target,
                                         "--architecture", seams("clf_packed.\(version).config.json"))
                XCTAssertEqual(refused.status, 2, "\(version) → \(target): \(refused.stdout)")
                XCTAssertTrue(refused.stderr.contains("layer embed") && refused.stderr.contains("--padding-id"), refused.stderr)
                XCTAssertFalse(FileManager.default.fileExists(atPath: out))

                let converted = try rnnkit("convert", seams("clf_packed.pt"), out, "--to", target,
                                           "--architecture", seams("clf_packed.\(version).config.json"), "--padding-id", "0")
                XCTAssertEqual(converted.status, 0, converted.stderr)
                XCTAssertTrue(converted.stdout.contains("mask_zero=True (--padding-id 0)"), converted.stdout)
                let verify = try rnnkit("verify", out, seams("clf_packed.fixture.h5"))
                XCTAssertEqual(verify.status, 0, verify.stdout + verify.stderr)
                XCTAssertEqual(verify.stderr, "", "ids padded with 0: the Embedding's mask is the lengths")

                // Run over every step, the Keras model is not the packed classifier: verify says so.
                let unmasked = try rnnkit("convert", seams("clf_packed.pt"), out, "--to", target, "--force",
                                          "--architecture", seams("clf_packed.\(version).config.json"), "--padding-id", "none")
                XCTAssertEqual(unmasked.status, 0, unmasked.stderr)
                let mismatch = try rnnkit("verify", out, seams("clf_packed.fixture.h5"))
                XCTAssertEqual(mismatch.status, 1, mismatch.stdout + mismatch.stderr)
                XCTAssertTrue(mismatch.stdout.contains("MISMATCH output"), mismatch.stdout)
                XCTAssertTrue(mismatch.stderr.contains("note: ") && mismatch.stderr.contains("embed (Embedding) makes no mask"),
                              mismatch.stderr)
            }
        }
        // A version-2 document stating padding_idx 0 converts as version 1 does.
        let out = folder.appendingPathComponent("padding_idx.keras").path
        let converted = try rnnkit("convert", seams("clf_packed.pt"), out, "--to", "keras3",
                                   "--architecture", seams("clf_packed.v2_padding_idx.config.json"))
        XCTAssertEqual(converted.status, 0, converted.stderr)
        XCTAssertTrue(converted.stdout.contains("mask_zero=True (padding_idx 0)"), converted.stdout)
        XCTAssertEqual(try rnnkit("verify", out, seams("clf_packed.fixture.h5")).status, 0)
    }

    /// The PyTorch model itself runs on the lengths, whatever the config version.
    func testPackedClassifierVerifiesInPyTorchWithEitherConfig() throws {
        for version in ["v1", "v2", "v2_padding_idx"] {
            let loaded = try LoadedModel(contentsOf: seams("clf_packed.pt"), architecture: seams("clf_packed.\(version).config.json"))
            let verification = try Verification(model: loaded, fixture: try Fixture(contentsOf: seams("clf_packed.fixture.h5")))
            XCTAssertTrue(verification.passed, version)
            XCTAssertEqual(verification.notes, [], version)
        }
    }

    /// A Keras model converted to PyTorch takes lengths as the Keras model does (its
    /// model_config says `"lengths": "keras_mask"`), so it verifies against the Keras fixture,
    /// and the emitted module drops the lengths where Keras drops the mask.
    func testKerasModelsConvertedToPyTorchKeepTheirLengthsRule() throws {
        let folder = try temporaryFolder(self)
        for name in ["tfk_embed_nomask.h5", "k3_embed_nomask.keras", "tfk_masking_replaces.h5", "k3_masking_replaces.keras"] {
            let stem = String(name.split(separator: ".")[0])
            for ext in ["pt", "safetensors", "h5"] {
                let out = folder.appendingPathComponent("\(stem).\(ext)").path
                let python = folder.appendingPathComponent("\(stem)_\(ext).py").path
                let report = try Converter.convert(seams(name), to: .pytorch, output: out, pythonModule: python)
                XCTAssertTrue(report.modelConfig?.contains("\"lengths\":\"keras_mask\"") ?? false, "\(name) → \(ext)")
                let loaded = try LoadedModel(contentsOf: out)
                XCTAssertEqual(loaded.model.lengthsRule, .kerasCallMask)
                let verification = try Verification(model: loaded, fixture: try Fixture(contentsOf: seams("\(stem).fixture.h5")))
                XCTAssertTrue(verification.passed, "\(name) → \(ext): \(verification.comparisons.map(\.maxAbsoluteError))")
                let source = try String(contentsOfFile: python, encoding: .utf8)
                XCTAssertTrue(source.contains("        lengths = None  # as in Keras"), "\(name) → \(ext): the emitted forward keeps the lengths")
                // And back to Keras as it was, with no padding id.
                let back = folder.appendingPathComponent("\(stem).\(ext).back.keras").path
                XCTAssertEqual(try Converter.convert(out, to: .keras3, output: back).notes, [], name)
                XCTAssertTrue(try Verification(model: try LoadedModel(contentsOf: back),
                                               fixture: try Fixture(contentsOf: seams("\(stem).fixture.h5"))).passed, name)
            }
        }
    }

    /// Lengths that do not fit the input (more rows than the batch) are the run's one-line
    /// error, never an index past the input while the note is worked out.
    func testLengthsThatDoNotFitAreTheRunsError() throws {
        let loaded = try LoadedModel(contentsOf: seams("k3_embed_nomask.keras"))
        let fixture = try Fixture(contentsOf: seams("k3_embed_nomask.fixture.h5"))
        let lengths = try XCTUnwrap(fixture.lengths) + [1, 1, 1]
        XCTAssertNil(loaded.lengthsNote(input: fixture.input, lengths: lengths))
        XCTAssertThrowsError(try loaded.run(fixture.input, lengths: lengths)) {
            XCTAssertTrue("\($0)".contains("lengths has \(lengths.count) entries"), "\($0)")
        }
    }
}

import Foundation
import TestSupport
import XCTest
@testable import RecurrentKit

/// The format registry (`Formats.all`, spec/architecture.md "Which container" and "How to
/// add a format"): every format's recognizer against every other format's committed files,
/// the precedence the registry states, the one check of read options, and the writers'
/// targets and extensions.
final class FormatRegistryTests: XCTestCase {
    /// The committed files of each format (models, not fixtures), by the format's name.
    private func samples() throws -> [String: [String]] {
        func files(_ folder: String, _ keep: (String) -> Bool) throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: fixture(folder)).filter(keep).sorted().map { "\(folder)/\($0)" }
        }
        let notFixture = { (name: String) in !name.hasSuffix(".fixture.h5") }
        let samples: [String: [String]] = [
            "torch-save": try files("pytorch-files") { $0.hasSuffix(".pt") || $0.hasSuffix(".pth") },
            "safetensors": try files("pytorch-files") { $0.hasSuffix(".safetensors") }
                + files("pytorch-files/safetensors-unit") { $0.hasSuffix(".safetensors") },
            "keras-hdf5": try files("keras") { $0.hasSuffix(".h5") && notFixture($0) },
            "pytorch-hdf5": try files("pytorch") { $0.hasSuffix(".h5") && notFixture($0) },
            "keras-archive": try files("keras") { $0.hasSuffix(".keras") },
            "onnx": try files("onnx") { $0.hasSuffix(".onnx") },
        ]
        // Every format of the registry has committed files, and nothing else is listed.
        XCTAssertEqual(Set(samples.keys), Set(Formats.all.map(\.name)))
        for (name, paths) in samples { XCTAssertGreaterThanOrEqual(paths.count, 2, name) }
        return samples
    }

    /// The ranks and names of the rules `format`'s signatures hold on `path`'s bytes.
    private func holding(_ format: any ModelFormat, on path: String) throws -> [Int] {
        let source = FormatSource(path: path)
        return try source.withProbe { probe in
            let input = SignatureInput(probe: probe, head: try probe.bytes(at: 0, count: 16), listing: { try source.zipNames() })
            return try format.signatures.filter { try $0.holds(input) }.map(\.rank)
        }
    }

    /// The matrix: for every format's committed files, exactly that format reads it; no
    /// other container's rule holds on it, and of the formats sharing its container the
    /// ones before it in the registry do not claim it.
    func testEveryRecognizerAgainstEveryFormatsFiles() throws {
        var checked = 0
        for (expected, paths) in try samples() {
            let owner = try XCTUnwrap(Formats.named(expected))
            for name in paths {
                let path = fixture(name)
                XCTAssertEqual(try Formats.format(of: FormatSource(path: path)).name, expected, name)
                for format in Formats.all {
                    let ranks = try holding(format, on: path)
                    if format.container == owner.container {
                        XCTAssertFalse(ranks.isEmpty, "\(format.name)'s rules miss \(name)")
                    } else {
                        XCTAssertEqual(ranks, [], "\(format.name)'s rules hold on \(name), a \(expected) file")
                    }
                    checked += 1
                }
                // Within a container, the registry's order: formats before the owner do not claim it.
                let shared = Formats.all.filter { $0.container == owner.container }
                for format in shared.prefix(while: { $0.name != expected }) {
                    XCTAssertFalse(try format.claims(FormatSource(path: path)), "\(format.name) claims \(name)")
                }
                XCTAssertTrue(try owner.claims(FormatSource(path: path)), name)
            }
        }
        XCTAssertGreaterThan(checked, 6 * 60)
    }

    /// The precedence the registry states: the rules in rank order, and Keras HDF5 before
    /// the PyTorch state_dict in HDF5 (which claims every HDF5 file Keras does not).
    func testPrecedence() throws {
        let rules = Formats.rules.map { "\($0.signature.rank) \($0.form.title)" }
        XCTAssertEqual(rules, [
            "10 an HDF5 file", "20 a .keras archive", "21 a torch.save file", "29 a zip archive",
            "30 a safetensors file", "40 an HDF5 file", "50 a torch.save file", "60 an ONNX model",
            "70 a safetensors file",
        ])
        let names = Formats.all.map(\.name)
        XCTAssertEqual(Set(names).count, names.count, "format names are unique")
        XCTAssertLessThan(try XCTUnwrap(names.firstIndex(of: "keras-hdf5")), try XCTUnwrap(names.firstIndex(of: "pytorch-hdf5")))
        // A PyTorch HDF5 file is claimed by the PyTorch format only; a Keras one by both, and
        // the registry's order gives it to Keras.
        let pytorchFile = FormatSource(path: fixture("pytorch/gru_basic.h5"))
        XCTAssertFalse(try XCTUnwrap(Formats.named("keras-hdf5")).claims(pytorchFile))
        let kerasFile = FormatSource(path: fixture("keras/tfk_gru_reset.h5"))
        XCTAssertTrue(try XCTUnwrap(Formats.named("pytorch-hdf5")).claims(kerasFile))
        XCTAssertEqual(try Formats.format(of: kerasFile).name, "keras-hdf5")
        // Each format's layouts are of its container and framework.
        for format in Formats.all {
            for layout in format.layouts {
                XCTAssertEqual(layout.container, format.container, layout.rawValue)
                XCTAssertEqual(layout.framework, format.framework, layout.rawValue)
            }
        }
    }

    /// A file's public identity: the container, the framework and the content, apart.
    func testContainerAndFramework() throws {
        let cases: [(String, ModelContainer, ModelFramework, ModelContent, Layout)] = [
            ("pytorch/gru_basic.h5", .hdf5, .pytorch, .stateDict, .pytorch),
            ("pytorch-files/gru_float16.pt", .torchSave, .pytorch, .stateDict, .pytorchSave),
            ("pytorch-files/clf_bilstm_max_sigmoid.safetensors", .safetensors, .pytorch, .stateDict, .pytorchSafetensors),
            ("keras/tfk_gru_reset.h5", .hdf5, .keras, .fullModel, .keras2H5),
            ("keras/k3h5_gru_reset.h5", .hdf5, .keras, .fullModel, .keras3H5),
            ("keras/k3_gru_reset.keras", .kerasArchive, .keras, .fullModel, .kerasArchive),
        ]
        for (name, container, framework, content, layout) in cases {
            let loaded = try LoadedModel(contentsOf: fixture(name))
            XCTAssertEqual(loaded.layout, layout, name)
            XCTAssertEqual(loaded.container, container, name)
            XCTAssertEqual(loaded.framework, framework, name)
            XCTAssertEqual(loaded.content, content, name)
        }
        let weights = try LoadedModel(contentsOf: fixture("keras/k3_stacked_bilstm.weights.h5"),
                                      architecture: fixture("keras/k3_stacked_bilstm.keras"))
        XCTAssertEqual(weights.content, .weightsOnly)
        // Layout's coding is its name, and only a known layout decodes.
        let data = try JSONEncoder().encode([Layout.kerasArchive])
        XCTAssertEqual(String(decoding: data, as: UTF8.self), #"["keras3-archive"]"#)
        XCTAssertEqual(try JSONDecoder().decode([Layout].self, from: data), [.kerasArchive])
        XCTAssertThrowsError(try JSONDecoder().decode([Layout].self, from: Data(#"["nope"]"#.utf8)))
        XCTAssertEqual(Layout(rawValue: "pytorch-pt"), .pytorchSave)
        XCTAssertEqual(Layout(rawValue: "onnx"), .onnx)
    }

    /// One check of the read options: each format refuses what it does not take, naming
    /// itself as before.
    func testReadOptionsAreCheckedAgainstTheFormat() throws {
        func refusal(_ name: String, key: String? = nil, modules: [String]? = nil,
                     matching: KerasWeightsMatching = .order, architecture: String? = nil) -> String {
            do {
                _ = try LoadedModel(contentsOf: fixture(name), architecture: architecture, key: key, modules: modules,
                                    weightsMatching: matching)
                return "read"
            } catch {
                return "\(error)".replacingOccurrences(of: fixture(name) + ": ", with: "")
            }
        }
        XCTAssertEqual(refusal("pytorch/gru_basic.h5", key: "model"),
                       "key picks a state_dict inside a torch.save checkpoint; this file is an HDF5 file")
        XCTAssertEqual(refusal("keras/k3_gru_reset.keras", key: "model"),
                       "key picks a state_dict inside a torch.save checkpoint; this file is a .keras archive")
        XCTAssertEqual(refusal("pytorch/gru_basic.h5", matching: .name),
                       "matching weights to layers by name applies to a legacy HDF5 weights-only file (layer_names), as Keras's load_weights(by_name=True) does; this file is a PyTorch state_dict")
        XCTAssertEqual(refusal("pytorch-files/gru_float16.pt", matching: .name),
                       "matching weights to layers by name applies to a legacy HDF5 weights-only file (layer_names), as Keras's load_weights(by_name=True) does; this file is a torch.save file")
        XCTAssertEqual(refusal("keras/k3_gru_reset.keras", modules: ["rnn"]),
                       "a selection of modules by key prefix reads a PyTorch state_dict; this file is a Keras 3 .keras archive")
        XCTAssertEqual(refusal("keras/tfk_gru_reset.h5", modules: ["rnn"]),
                       "a selection of modules by key prefix reads a PyTorch state_dict; this file is a Keras model")
        XCTAssertEqual(refusal("onnx/lstm.onnx"), "read")
        XCTAssertEqual(refusal("onnx/lstm.onnx", key: "model"),
                       "key picks a state_dict inside a torch.save checkpoint; this file is an ONNX model")
        XCTAssertEqual(refusal("onnx/lstm.onnx", modules: ["rnn"]),
                       "a selection of modules by key prefix reads a PyTorch state_dict; this file is an ONNX model")
        XCTAssertEqual(refusal("onnx/lstm.onnx", architecture: fixture("onnx/lstm.onnx")),
                       "an architecture given beside a file is for weights that carry none; this file is an ONNX model")
        // A form no format reads is refused as what it is; a key is refused before that, as before.
        XCTAssertEqual(refusal("hdf5/random.h5", key: "model"),
                       "key picks a state_dict inside a torch.save checkpoint; this file is a file of no form rnnkit reads")
    }

    /// The conversion targets are the registry's, in its order, with the same names; each
    /// output extension chooses one format of its target.
    func testWritingTargetsAndExtensions() throws {
        XCTAssertEqual(ConversionTarget.allCases.map(\.rawValue), ["pytorch", "keras", "keras3", "onnx"])
        XCTAssertEqual(ConversionTarget(rawValue: "keras3"), .keras3)
        XCTAssertEqual(ConversionTarget(rawValue: "onnx"), .onnx)
        XCTAssertNil(ConversionTarget(rawValue: "tflite"))
        XCTAssertEqual(Formats.extensions(of: .pytorch), ".pt, .pth, .safetensors, .h5 or .hdf5")
        let cases: [(ConversionTarget, String, String?)] = [
            (.pytorch, "out.pt", "torch-save"), (.pytorch, "out.PTH", "torch-save"),
            (.pytorch, "out.safetensors", "safetensors"), (.pytorch, "out.h5", "pytorch-hdf5"),
            (.pytorch, "out.hdf5", "pytorch-hdf5"), (.pytorch, "out.keras", nil), (.pytorch, "out", nil),
            (.keras, "out.h5", "keras-hdf5"), (.keras, "out.HDF5", "keras-hdf5"), (.keras, "out.pt", nil),
            (.keras3, "out.keras", "keras-archive"), (.keras3, "out.h5", nil),
            (.onnx, "out.onnx", "onnx"), (.onnx, "out.ONNX", "onnx"), (.onnx, "out.h5", nil),
        ]
        for (target, output, expected) in cases {
            XCTAssertEqual(Formats.writing(target, output: output)?.name, expected, "\(target.rawValue) \(output)")
        }
    }
}

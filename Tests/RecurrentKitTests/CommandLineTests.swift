import Foundation
import HDF5
import XCTest
import TestSupport
@testable import RecurrentKit

/// `rnnkit` run as a user runs it: exact exit codes, one-line errors, files written.
final class CommandLineTests: XCTestCase {
    let model = fixture("pytorch/lstm_bidir_2layer_lengths.h5")
    let fixtureFile = fixture("pytorch/lstm_bidir_2layer_lengths.fixture.h5")

    func testVersionAndHelp() throws {
        let version = try rnnkit("--version")
        XCTAssertEqual(version.status, 0)
        // The version, then the CPU level and FMA the binary was built for, and the libhdf5 it runs.
        let line = version.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(line.hasPrefix("\(RecurrentKit.version) (built for "), line)
        let hdf5 = "; libhdf5 \(HDF5File.libraryVersion))"
        XCTAssertTrue(HDF5File.libraryVersion.split(separator: ".").count == 3, HDF5File.libraryVersion)
        XCTAssertTrue(["AVX-512", "AVX2", "AVX", "x86-64 baseline", "arm64 NEON"].contains { level in
            line.hasSuffix("(built for \(level), FMA\(hdf5)") || line.hasSuffix("(built for \(level), no FMA\(hdf5)")
        }, line)
        let help = try rnnkit("--help")
        XCTAssertEqual(help.status, 0)
        for subcommand in ["inspect", "run", "verify"] { XCTAssertTrue(help.stdout.contains(subcommand), subcommand) }
    }

    func testInspectText() throws {
        let result = try rnnkit("inspect", model)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("layout:     PyTorch state_dict (HDF5)"), result.stdout)
        // Sizes as the file's own shapes give them.
        let root = try HDF5File.open(model).root
        let inputSize = try root.dataset("rnn.weight_ih_l0").shape[1]
        let hiddenSize = try root.dataset("rnn.weight_hh_l0").shape[1]
        XCTAssertTrue(result.stdout.contains("rnn (LSTM): input_size=\(inputSize) hidden_size=\(hiddenSize) num_layers=2 bidirectional=true bias=true gates=[input,forget,cell,output]"), result.stdout)
    }

    func testInspectEveryForm() throws {
        let cases: [(String, String)] = [
            ("keras/k3_return_state.keras", "Keras 3 archive (.keras), Functional"),
            ("keras/tfk_text_bilstm.h5", "Keras 2 / tf-keras full model (HDF5), Sequential"),
            ("keras/k3h5_text_bilstm.h5", "Keras 3 full model (legacy HDF5), Sequential"),
            ("keras/tfk_stacked_bilstm.legacy-weights.h5", "Keras weights only (legacy form)"),
            ("keras/k3_stacked_bilstm.weights.h5", "Keras weights only (keras3 form)"),
            ("pytorch/gru_basic.h5", "PyTorch state_dict (HDF5)"),
        ]
        for (file, layout) in cases {
            let result = try rnnkit("inspect", fixture(file))
            XCTAssertEqual(result.status, 0, "\(file): \(result.stderr)")
            XCTAssertTrue(result.stdout.contains("layout:     \(layout)"), "\(file): \(result.stdout)")
        }
        let withArchitecture = try rnnkit("inspect", fixture("keras/k3_stacked_bilstm.weights.h5"),
                                          "--architecture", fixture("keras/k3_stacked_bilstm.keras"))
        XCTAssertEqual(withArchitecture.status, 0, withArchitecture.stderr)
        XCTAssertTrue(withArchitecture.stdout.contains("Keras weights only (HDF5), Sequential"), withArchitecture.stdout)
    }

    func testInspectJSON() throws {
        let result = try rnnkit("inspect", "--json", fixture("pytorch/lstm_float16.h5"))
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["layout"] as? String, "pytorch")
        XCTAssertEqual(object["dtypes"] as? [String], ["float16"])
        let layers = try XCTUnwrap(object["layers"] as? [[String: Any]])
        XCTAssertEqual(layers.first?["type"] as? String, "LSTM")
        XCTAssertEqual(layers.first?["gate_order"] as? [String], ["input", "forget", "cell", "output"])
        let loaded = try LoadedModel(contentsOf: fixture("pytorch/lstm_float16.h5"))
        XCTAssertEqual(object["parameters"] as? Int, loaded.recurrentLayers.flatMap(\.directions).reduce(0) {
            $0 + $1.inputWeight.count + $1.recurrentWeight.count + ($1.inputBias?.count ?? 0) + ($1.recurrentBias?.count ?? 0)
        })
    }

    func testVerifyPasses() throws {
        let result = try rnnkit("verify", model, fixtureFile)
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        for name in ["output", "h_n", "c_n"] {
            XCTAssertTrue(result.stdout.contains("ok       \(name)"), result.stdout)
        }
        XCTAssertTrue(result.stdout.contains("max abs error"))
        // On more threads: the same outputs, so the same report.
        let threaded = try rnnkit("verify", model, fixtureFile, "--threads", "3")
        XCTAssertEqual(threaded.status, 0, threaded.stdout + threaded.stderr)
        XCTAssertEqual(threaded.stdout, result.stdout)
    }

    func testVerifyMismatchExitsOneAndNamesTheFirstIndex() throws {
        let folder = try temporaryFolder(self)
        let bad = folder.appendingPathComponent("perturbed.fixture.h5").path
        let original = try Fixture(contentsOf: fixtureFile)
        do {
            let root = try HDF5File.create(bad).root
            guard case let .features(x) = original.input else { return XCTFail("float inputs expected") }
            try root.write("inputs", floats: x.values, shape: x.shape)
            try root.write("lengths", integers: (original.lengths ?? []).map(Int64.init), shape: [original.lengths?.count ?? 0])
            for (name, tensor) in original.expected {
                var values = tensor.values
                if name == "h_n" { values[7] += 1e-3 }
                try root.write("expected/\(name)", floats: values, shape: tensor.shape)
            }
        }
        let result = try rnnkit("verify", model, bad)
        XCTAssertEqual(result.status, 1, result.stdout + result.stderr)
        let line = try XCTUnwrap(result.stdout.split(separator: "\n").first { $0.contains("MISMATCH") })
        XCTAssertTrue(line.contains("h_n"), String(line))
        let hShape = try XCTUnwrap(original.expected.first { $0.name == "h_n" }?.tensor.shape)
        XCTAssertTrue(line.contains("first at \(Comparison.multiIndex(7, shape: hShape))"), String(line))
        // A looser tolerance from the command line lets it pass.
        XCTAssertEqual(try rnnkit("verify", model, bad, "--atol", "2e-3").status, 0)
    }

    func testErrorsAreOneLineWithStatus2() throws {
        let cases: [[String]] = [
            ["verify", model, fixture("hdf5/random.h5")],
            ["verify", fixture("hdf5/not_hdf5.h5"), fixtureFile],
            ["verify", fixture("pytorch/gru_basic.h5"), fixtureFile],
            ["inspect", fixture("hdf5/truncated.h5")],
            ["inspect", fixture("hdf5/dtypes.h5")],
            ["inspect", "no/such/file.h5"],
            ["run", model, "--input", fixture("hdf5/empty.h5"), "--output", "/nonexistent/out.h5"],
            ["bogus-subcommand"],
            // libhdf5 1.10 faults inside its own code on this file: still one line, status 2.
            ["inspect", fixture("hdf5/global_heap_fault.h5")],
            ["convert", fixture("hdf5/global_heap_fault.h5"), "/nonexistent/out.h5", "--to", "pytorch"],
            ["verify", model],
            ["verify", model, fixtureFile, "--threads", "0"],
            ["run", model, "--input", fixtureFile, "--output", "/nonexistent/out.h5", "--threads", "0"],
        ]
        for arguments in cases {
            let result = try rnnkit(arguments)
            XCTAssertEqual(result.status, 2, "\(arguments): \(result.stdout) \(result.stderr)")
            let lines = result.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(arguments): \(result.stderr)")
            XCTAssertTrue(result.stderr.hasPrefix("rnnkit: error: "), result.stderr)
            XCTAssertFalse(result.stderr.contains("Fatal error"), result.stderr)
        }
        // The message names the file.
        let missing = try rnnkit("inspect", "no/such/file.h5")
        XCTAssertTrue(missing.stderr.contains("no/such/file.h5: no such file"), missing.stderr)
    }

    func testRunWritesOutputsThatMatchTheFixture() throws {
        let folder = try temporaryFolder(self)
        let out = folder.appendingPathComponent("out.h5").path
        let result = try rnnkit("run", model, "--input", fixtureFile, "--output", out)
        XCTAssertEqual(result.status, 0, result.stderr)
        let written = try HDF5File.open(out).root
        XCTAssertEqual(try written.memberNames(), ["c_n", "h_n", "output"])
        let original = try Fixture(contentsOf: fixtureFile)
        for (name, expected) in original.expected {
            let actual = try Tensor(shape: try written.dataset(name).shape, values: try written.dataset(name).readFloats())
            XCTAssertTrue(Comparison(name: name, actual: actual, expected: expected, atol: 1e-5, rtol: 1e-4).passed, name)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), ["out.h5"], "no temporary left behind")
    }

    func testRunRefusesToWriteOverItsInputs() throws {
        let result = try rnnkit("run", model, "--input", fixtureFile, "--output", fixtureFile)
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(try Fixture(contentsOf: fixtureFile).expected.count == 3, "input untouched")
    }

    func testBenchJSON() throws {
        for model in ["pytorch/lstm_bidir_2layer_lengths.h5", "pytorch/clf_embed_lstm_last_hidden.h5", "keras/k3_text_bilstm.keras"] {
            let result = try rnnkit("bench", fixture(model), "--batch", "3", "--time", "5", "--repeat", "2", "--threads", "2", "--json")
            XCTAssertEqual(result.status, 0, "\(model): \(result.stderr)")
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any], result.stdout)
            let median = try XCTUnwrap(object["median_seconds"] as? Double)
            let minimum = try XCTUnwrap(object["min_seconds"] as? Double)
            XCTAssertGreaterThan(median, 0)
            XCTAssertLessThanOrEqual(minimum, median)
            XCTAssertGreaterThan(try XCTUnwrap(object["gflops"] as? Double), 0)
            XCTAssertEqual((object["seconds"] as? [Double])?.count, 2)
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(object["warmup_passes"] as? Int), 1)
            // What the binary was built for.
            XCTAssertNotNil(object["cpu_level"] as? String, result.stdout)
            XCTAssertNotNil(object["fma"] as? Bool, result.stdout)
            XCTAssertNotNil(object["cpu_features"] as? [String], result.stdout)
        }
        // --warmup 0: exactly one untimed pass.
        let once = try rnnkit("bench", fixture("pytorch/gru_basic.h5"), "--warmup", "0", "--repeat", "1", "--json")
        XCTAssertEqual(once.status, 0, once.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(once.stdout.utf8)) as? [String: Any], once.stdout)
        XCTAssertEqual(report["warmup_passes"] as? Int, 1)
        for value in ["-1", "nan", "61"] {
            let refused = try rnnkit("bench", fixture("pytorch/gru_basic.h5"), "--warmup", value)
            XCTAssertEqual(refused.status, 2, "--warmup \(value)")
            XCTAssertEqual(refused.stderr.split(separator: "\n").count, 1, refused.stderr)
        }
        let text = try rnnkit("bench", fixture("pytorch/gru_basic.h5"), "--batch", "2", "--time", "4", "--repeat", "3")
        XCTAssertEqual(text.status, 0, text.stderr)
        XCTAssertTrue(text.stdout.contains("median"), text.stdout)
        let bad = try rnnkit("bench", fixture("pytorch/gru_basic.h5"), "--batch", "0")
        XCTAssertEqual(bad.status, 2)
        XCTAssertEqual(bad.stderr.split(separator: "\n").count, 1, bad.stderr)
    }

    /// A Keras 2.2-style weights file: with its rebuilt (hard_sigmoid) architecture it
    /// verifies in order; with one rebuilt with today's defaults it mismatches, and one note
    /// on stderr says why; by name it is refused in one line.
    func testKeras22WeightsVerifyInOrderWithOneNote() throws {
        let weights = fixture("keras/tfk_keras22_lstm.legacy-weights.h5")
        let fixtureFile = fixture("keras/tfk_keras22_lstm.legacy-weights.fixture.h5")
        let rebuilt = try rnnkit("verify", weights, fixtureFile)
        XCTAssertEqual(rebuilt.status, 0, rebuilt.stdout + rebuilt.stderr)
        XCTAssertEqual(rebuilt.stderr, "")
        let defaults = try rnnkit("verify", weights, fixtureFile, "--architecture", fixture("keras/tfk_keras22_lstm.defaults.json"))
        XCTAssertEqual(defaults.status, 1, defaults.stdout + defaults.stderr)
        XCTAssertTrue(defaults.stdout.contains("MISMATCH output"), defaults.stdout)
        XCTAssertEqual(defaults.stderr, "note: weights written by Keras 2.2.0, whose LSTM default recurrent_activation was hard_sigmoid (sigmoid since 2.3.0); the architecture says sigmoid (lstm, lstm_1): if the model was built with the defaults, rebuild it with recurrent_activation='hard_sigmoid'\n")
        let inspect = try rnnkit("inspect", weights, "--architecture", fixture("keras/tfk_keras22_lstm.defaults.json"))
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertEqual(inspect.stderr, defaults.stderr)
        XCTAssertTrue(inspect.stdout.contains("lstm (LSTM): units=5 activation=tanh recurrent_activation=sigmoid use_bias=true return_sequences=true weights_from=lstm_1"), inspect.stdout)
        let converted = try temporaryFolder(self).appendingPathComponent("defaults.keras").path
        let convert = try rnnkit("convert", weights, converted, "--to", "keras3", "--architecture", fixture("keras/tfk_keras22_lstm.defaults.json"))
        XCTAssertEqual(convert.status, 0, convert.stderr)
        XCTAssertEqual(convert.stderr, defaults.stderr)
        XCTAssertFalse(convert.stdout.contains("note:"), convert.stdout)
        let byName = try rnnkit("verify", weights, fixtureFile, "--by-name")
        XCTAssertEqual(byName.status, 2, byName.stdout + byName.stderr)
        XCTAssertEqual(byName.stderr.split(separator: "\n").count, 1, byName.stderr)
        XCTAssertTrue(byName.stderr.contains("layer lstm (LSTM)"), byName.stderr)
    }

    /// `--by-name` is Keras's by_name=True; a fixture's `weights_matching` says which
    /// pairing its outputs came from, and `verify` of a folder honours it.
    func testByNameFlagAndFixtureAttribute() throws {
        let weights = fixture("keras/tfk_swapped_dense.legacy-weights.h5")
        let inOrder = fixture("keras/tfk_swapped_dense.legacy-weights.fixture.h5")
        let byName = fixture("keras/tfk_swapped_dense.legacy-weights.by-name.fixture.h5")
        XCTAssertEqual(try rnnkit("verify", weights, inOrder).status, 0)
        XCTAssertEqual(try rnnkit("verify", weights, inOrder, "--by-name").status, 1)
        XCTAssertEqual(try rnnkit("verify", weights, byName).status, 0)
        let run = try rnnkit("verify", inOrder, byName)
        XCTAssertEqual(run.status, 0, run.stdout + run.stderr)
        XCTAssertTrue(run.stdout.contains("2 passed"), run.stdout)
        let folder = try rnnkit("verify", fixture("keras"), "--by-name")
        XCTAssertEqual(folder.status, 2)
        XCTAssertTrue(folder.stderr.contains("--by-name apply to one model and fixture"), folder.stderr)
        let full = try rnnkit("inspect", fixture("keras/tfk_stacked_bilstm.h5"), "--by-name")
        XCTAssertEqual(full.status, 2)
        XCTAssertTrue(full.stderr.contains("by name applies to a legacy HDF5 weights-only file"), full.stderr)
    }
}
